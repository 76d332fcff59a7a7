package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcpreload/mcpreload/loader"
)

// metrics are the node's Prometheus metrics, on a registry of its own so
// several nodes can run in one process (tests, benchmarks).
type metrics struct {
	reg          *prometheus.Registry
	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	listChanged  prometheus.Counter
	discarded    *prometheus.CounterVec
}

func newMetrics(l *loader.Loader, ready func() bool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpreload_tool_calls_total",
			Help: "Tool calls by tool, module version and outcome (ok, tool_error, timeout, trap, memory_limit, bad_output, bad_input, canceled, error).",
		}, []string{"tool", "version", "outcome"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpreload_tool_call_duration_seconds",
			Help:    "Tool call latency inside the node, by tool and module version.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"tool", "version"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpreload_reloads_total",
			Help: "Reload attempts by module and outcome (committed, unchanged, rejected, failed, rolled_back, unloaded).",
		}, []string{"module", "outcome"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpreload_events_discarded_total",
			Help: "Events refused on arrival, by stream (commands, acks, requests) and reason (malformed, invalid, wrong_subject, unauthorized).",
		}, []string{"stream", "reason"}),
		listChanged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpreload_tool_list_changes_total",
			Help: "Changes of the tool list announced to MCP clients (notifications/tools/list_changed).",
		}),
	}
	m.reg.MustRegister(m.calls, m.callDuration, m.reloads, m.listChanged, m.discarded,
		&loaderCollector{l: l},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mcpreload_ready", Help: "1 once the node's initial modules are loaded."},
			func() float64 {
				if ready() {
					return 1
				}
				return 0
			}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) call(tool, version, outcome string, took time.Duration) {
	m.calls.WithLabelValues(tool, version, outcome).Inc()
	if version != "" {
		m.callDuration.WithLabelValues(tool, version).Observe(took.Seconds())
	}
}

// loaderCollector reports the loader's state at scrape time.
type loaderCollector struct{ l *loader.Loader }

var (
	moduleInfoDesc = prometheus.NewDesc("mcpreload_module_info",
		"Loaded module versions: 1 for the current version (role=current) and the one kept for rollback (role=old).",
		[]string{"module", "version", "digest", "role"}, nil)
	instancesDesc = prometheus.NewDesc("mcpreload_instances", "Live wasm instances by module.", []string{"module"}, nil)
	inflightDesc  = prometheus.NewDesc("mcpreload_calls_in_flight", "Calls running or waiting, by module.", []string{"module"}, nil)
	compilesDesc  = prometheus.NewDesc("mcpreload_compiles_total", "Modules compiled by this node.", nil, nil)
)

func (c *loaderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- moduleInfoDesc
	ch <- instancesDesc
	ch <- inflightDesc
	ch <- compilesDesc
}

func (c *loaderCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.l.Stats() {
		ch <- prometheus.MustNewConstMetric(moduleInfoDesc, prometheus.GaugeValue, 1, s.Module, s.Version, s.Digest, "current")
		if s.OldDigest != "" {
			ch <- prometheus.MustNewConstMetric(moduleInfoDesc, prometheus.GaugeValue, 1, s.Module, "", s.OldDigest, "old")
		}
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Instances), s.Module)
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(s.InFlight), s.Module)
	}
	ch <- prometheus.MustNewConstMetric(compilesDesc, prometheus.CounterValue, float64(c.l.Compiles()))
}
