# Shared fixtures live in plugin modules next to this file so any test folder can use them.
# (This folder is put on sys.path explicitly, so it works whether or not tests/ is a package.)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest_plugins = ["fixtures_mosquitto", "fixtures_postgres"]
