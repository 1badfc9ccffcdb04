from kmseg.cli import console
import sys

sys.exit(console())
