"""Build script of package2 (the classic setuptools style; package1 shows the pyproject-only style)."""

from setuptools import find_packages, setup

setup(
    name="package2",
    version="1.0.0",
    description="Spark DataFrame transformations shared by the data team's jobs and notebooks.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the library: tests/ and notebooks/ stay out of the wheel.
    packages=find_packages(include=["package2", "package2.*"]),
    # pyspark is provided by the Databricks runtime; it is a dev requirement only.
    install_requires=[],
)
