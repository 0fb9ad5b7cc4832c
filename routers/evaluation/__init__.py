"""Offline evaluation: metrics (PGR, APGR, CPT), benchmarks, decontamination, plots, reports."""
