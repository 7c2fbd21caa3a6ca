"""The `mailbot` command: argument parsing in main.py, one module per command group."""
