"""MetricsForwarderFunction: EMF metrics from the stack's log groups copied to Datadog."""
