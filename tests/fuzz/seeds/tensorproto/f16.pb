
Ba_long_name*€x€€