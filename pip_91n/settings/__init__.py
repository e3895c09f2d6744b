"""What the user asked for: settings with their sources, the mirror catalog, pip's own index.

``values`` (every setting's key, variable, default and parser), ``catalog`` (the mirrors and
the one "name or URL -> Mirror" parser), ``configfile`` (the TOML files: where, reading,
editing), ``config`` (the precedence: environment > user file > site file > default) and
``pipconf`` (pip's index setting, read without pip). Imports nothing above ``errors``.
"""
