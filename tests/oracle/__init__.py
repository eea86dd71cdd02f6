"""An independent oracle of the grant money (issue 20, Must show 1): see ``tests.oracle.model``."""
