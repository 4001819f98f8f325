"""Stream plug-ins, one subpackage each (`pipeline/streams/<name>/`)."""
