"""Request handlers, one module per noun; routes.py maps URLs onto them."""
