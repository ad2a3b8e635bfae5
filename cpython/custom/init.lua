-- custom/__init__.py: what the modules of custom/ share.
return {
    JUNIT_FILENAME = "test-results.xml",
}
