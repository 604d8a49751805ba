"""Services: the write path (validate, check rules, append to the log) and read assembly."""
