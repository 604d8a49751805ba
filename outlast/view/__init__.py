"""The view: a site's SQLite read model, projected from the log and disposable."""
