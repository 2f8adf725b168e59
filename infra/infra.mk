# Infrastructure targets (build, validate, deploy), included by the top-level Makefile.
