"""HTTP edge: parse requests, call one service, render JSON. No SQL, no subjects."""
