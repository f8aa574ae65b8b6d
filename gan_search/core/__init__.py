"""The core: the search-space model, trial configs, the shared vocabulary, errors and atomic
files. Standard library and yaml only (torch only where a torch payload is saved)."""
