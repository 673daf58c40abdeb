"""Every private name of Lightning, torch and Hydra the template uses, in this room alone, each with why and a
test (tests/test_shims.py) that fails, naming the version, when one moves."""
