package daemon

import (
	"context"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

// spendReport is the handler of rpc.MethodSpend.
func (d *Daemon) spendReport(ctx context.Context, c *call) (any, error) {
	var p rpc.SpendParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	switch p.By {
	case "", string(spend.ByBackend), string(spend.ByModel), string(spend.ByNamespace):
	default:
		return nil, proxy.InvalidParams("by", "by must be backend, model or namespace (or left out for the total), not %q", p.By)
	}
	since, err := rpc.ParseSince(p.Since, time.Now())
	if err != nil {
		return nil, proxy.InvalidParams("since", "%v", err)
	}
	return d.pl.SpendReport(since, p.By)
}
