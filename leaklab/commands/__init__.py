"""One module per ``leaklab`` subcommand; each defines ``command`` (a click command).

Modules import their heavy dependencies inside the command function, so the CLI starts fast.
"""
