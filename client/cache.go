package client

import (
	"context"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// CacheStats reports lbgptd's caches: entries, size, hits by kind, misses.
func (c *Client) CacheStats(ctx context.Context) (*rpc.CacheStats, error) {
	var res rpc.CacheStats
	if err := c.call(ctx, rpc.MethodCacheStats, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// CachePurge removes cache entries: those of namespace when it is not nil
// ("" is the default namespace), those stored longer ago than olderThan
// when it is positive, both when both are given, all when neither is.
func (c *Client) CachePurge(ctx context.Context, namespace *string, olderThan time.Duration) (*rpc.CachePurgeResult, error) {
	var res rpc.CachePurgeResult
	p := rpc.CachePurgeParams{Namespace: namespace, OlderThan: rpc.Duration(olderThan)}
	if err := c.call(ctx, rpc.MethodCachePurge, p, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// CacheForget removes one cache entry, exact or semantic, by the id a
// response's metadata gave (Meta.CacheEntry). It reports whether there was
// such an entry.
func (c *Client) CacheForget(ctx context.Context, id string) (bool, error) {
	var res rpc.CacheForgetResult
	if err := c.call(ctx, rpc.MethodCacheForget, rpc.CacheForgetParams{ID: id}, &res); err != nil {
		return false, err
	}
	return res.Removed, nil
}

// CacheCompact rewrites the cache file without its free pages.
func (c *Client) CacheCompact(ctx context.Context) (*rpc.CacheCompactResult, error) {
	var res rpc.CacheCompactResult
	if err := c.call(ctx, rpc.MethodCacheCompact, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Embeddings answers one OpenAI embeddings request (anything that
// marshals to one). Each input is cached on its own: only the inputs not
// cached go upstream, and Cached says which came from the cache.
func (c *Client) Embeddings(ctx context.Context, req any, opts rpc.Options) (*rpc.EmbeddingsResult, error) {
	raw, err := marshalRequest(req)
	if err != nil {
		return nil, err
	}
	var res rpc.EmbeddingsResult
	if err := c.call(ctx, rpc.MethodEmbeddings, rpc.EmbeddingsParams{Request: raw, Options: opts}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Spend reports what answers cost and the caches saved since p.Since,
// grouped by p.By (see rpc.SpendParams).
func (c *Client) Spend(ctx context.Context, p rpc.SpendParams) (*rpc.SpendResult, error) {
	var res rpc.SpendResult
	if err := c.call(ctx, rpc.MethodSpend, p, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
