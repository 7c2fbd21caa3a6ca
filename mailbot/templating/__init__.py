"""Reply templates: jinja2 lookup and rendering, per-language formats, MIME bytes."""
