/** Prometheus metrics for a node or an embedded store (prom-client is loaded only when asked for). */
export { createPrometheusMetrics, type PrometheusMetrics, type PrometheusMetricsOptions } from './prometheus.js';
export { serveMetrics, type MetricsServer } from './metrics-http.js';
