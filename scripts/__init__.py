"""Tools run by hand or by the tests (the fixture log, the fact catalogue, import cycles)."""
