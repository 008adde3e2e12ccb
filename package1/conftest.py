"""Makes `import package1` find this source tree when pytest runs from anywhere (pytest puts this folder on sys.path)."""
