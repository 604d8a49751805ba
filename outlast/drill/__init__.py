"""Fire drills: load like real clients, a fault, and a verdict on what users lost."""
