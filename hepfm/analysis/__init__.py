"""Analysis helpers shared by the notebooks: metrics, physics validation, plots."""
