"""nmlab reports: Pareto reports (HTML, PNG, Markdown) and design-point checks."""
