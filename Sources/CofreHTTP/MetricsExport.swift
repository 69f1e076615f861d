import Metrics
public import Prometheus

/// The process-wide Prometheus registry behind `/metrics`. swift-metrics can be bootstrapped once
/// per process, so this does it lazily, the first time an application is built.
public enum MetricsExport {
    public static let registry = PrometheusCollectorRegistry()

    /// Idempotent: the first call installs the Prometheus factory, later calls do nothing.
    public static let bootstrap: Void = {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        MetricsSystem.bootstrap(factory)
    }()
}
