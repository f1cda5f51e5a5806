"""The site's date and number formats per language (FORMAT_MODULE_PATH).

Each language's module overrides only what differs from Django's own locale
formats; everything else falls back to them.
"""
