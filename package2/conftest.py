"""Makes `import package2` find this source tree when pytest runs from anywhere (pytest puts this folder on sys.path)."""
