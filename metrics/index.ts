export { createPrometheusMetrics, type PrometheusMetrics, type PrometheusMetricsOptions } from './prometheus.js';
export { serveMetrics, type MetricsServer } from './http.js';
