"""Loading the admin-tunable rules in `rules/` (YAML) into validated, frozen objects."""
