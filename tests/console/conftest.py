import os
import sys

# The gateway tests' helpers (scripted seals, the HTTP harness) are shared with these.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway"))
