package metrics

import "github.com/prometheus/client_golang/prometheus"

// NSS holds the collectors of the NSS lookup cache (the nsscache package, GET /v1/passwd). New creates it
// as Metrics.NSS. No label carries a user name.
type NSS struct {
	// Answers counts the answers given, by key ("name", "uid") and result ("found", "notfound",
	// "unavailable").
	Answers *prometheus.CounterVec
	// Cache counts how each name lookup met the cache: "hit" (a fresh positive entry), "stale" (a positive
	// entry due for its background refresh, answered from the cache), "negative_hit", "miss" (a lookup
	// was needed), "busy" (a miss refused because too many lookups were in flight or the caller's share
	// was used up).
	Cache *prometheus.CounterVec
	// Lookups counts the authorizations the cache sent, by result: "permit", "deny", "no_template"
	// (permitted at a privilege level no template covers), "unavailable".
	Lookups *prometheus.CounterVec
	// Entries is the number of cached entries, positive and negative.
	Entries prometheus.Gauge
	// InFlight is the number of lookups running.
	InFlight prometheus.Gauge
}

func newNSS() *NSS {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tacagent", Name: name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tacagent", Name: name, Help: help})
	}
	return &NSS{
		Answers:  cv("nss_answers_total", "NSS (passwd) answers of the local API, by key (name, uid) and result (found, notfound, unavailable).", "key", "result"),
		Cache:    cv("nss_cache_total", "NSS name lookups by how they met the cache (hit, stale, negative_hit, miss, busy).", "outcome"),
		Lookups:  cv("nss_lookups_total", "Authorizations sent by the NSS cache to learn a user's privilege level, by result (permit, deny, no_template, unavailable).", "result"),
		Entries:  g("nss_cache_entries", "Entries in the NSS cache, positive and negative."),
		InFlight: g("nss_lookups_in_flight", "NSS cache lookups (authorizations) running."),
	}
}

func (n *NSS) collectors() []prometheus.Collector {
	return []prometheus.Collector{n.Answers, n.Cache, n.Lookups, n.Entries, n.InFlight}
}
