package balance

import (
	"maps"
	"slices"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// Reconfigure makes backends (with their providers, in the same order) the
// pool's members, matched to the current ones by name, and adopts opts'
// strategy, overallocation, attempts, backoff and reprobe (its clock is
// kept):
//
//   - a backend whose name is new joins with fresh state;
//   - a backend whose name is gone leaves: it takes no new request, and
//     the requests it has in flight finish on it;
//   - a backend that keeps its name and its account (type, URL, key, API
//     version, model map) keeps its live state — rate-limit buckets,
//     cooldowns, stats, requests in flight — and adopts its new weight,
//     priority, models, max_concurrent and limits; a changed limit keeps
//     what was used of the old one;
//   - a backend that keeps its name but changes its account is a new
//     member: the old one leaves as above.
//
// The provider given for a kept member is not used: the member keeps the
// one it has (its connections stay warm). Queued requests are dispatched
// again at once, so a new backend takes them.
func (p *Pool) Reconfigure(backends []config.Backend, providers []*provider.Provider, opts Options) {
	opts = withDefaults(opts)
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	opts.Now = p.now
	p.opts = opts
	old := make(map[string]*Member, len(p.members))
	for _, m := range p.members {
		old[m.Name()] = m
	}
	members := make([]*Member, 0, len(backends))
	for i, b := range backends {
		b = memberDefaults(b)
		var prov *provider.Provider
		if i < len(providers) {
			prov = providers[i]
		}
		m := old[b.Name]
		if m == nil || !sameAccount(m.Config, b) {
			members = append(members, p.newMember(b, prov, now))
			continue
		}
		m.retune(b, now)
		members = append(members, m)
	}
	for _, m := range old {
		if !slices.Contains(members, m) {
			// A member that leaves closes its connections once its last
			// call is done (release does it then), not 90 s later.
			m.retired = true
			if m.inFlight == 0 {
				m.closeIdle()
			}
		}
	}
	p.members = members
	p.dispatchLocked(now)
}

// sameAccount reports whether a and b call the same upstream account the
// same way, so that a member can keep its live state across a reload.
func sameAccount(a, b config.Backend) bool {
	return a.Type == b.Type && a.BaseURL == b.BaseURL && a.Key == b.Key &&
		a.APIVersion == b.APIVersion && maps.Equal(a.ModelMap, b.ModelMap)
}

// retune adopts b's tunable settings. The fields it writes are read only
// under the pool's mu (Deployment and the provider, read during calls, are
// part of the account and never change on a kept member).
func (m *Member) retune(b config.Backend, now time.Time) {
	if b.LimitRPM != m.Config.LimitRPM {
		m.rpm.Resize(b.LimitRPM, now)
	}
	if b.LimitTPM != m.Config.LimitTPM {
		m.tpm.Resize(b.LimitTPM, now)
	}
	m.Config.Weight = b.Weight
	m.Config.Priority = b.Priority
	m.Config.Models = slices.Clone(b.Models)
	m.Config.MaxConcurrent = b.MaxConcurrent
	m.Config.LimitRPM = b.LimitRPM
	m.Config.LimitTPM = b.LimitTPM
	m.Config.APIKeyEnv, m.Config.APIKeyFile = b.APIKeyEnv, b.APIKeyFile
}
