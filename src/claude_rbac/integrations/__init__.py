"""Framework adapters. Each imports the core and its own framework only."""
