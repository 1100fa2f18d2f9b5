package userapi_test

import (
	"fmt"
	"testing"

	"github.com/chappe-matrix/chappe/userapi"

	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

// Run with: go test ./userapi/ -run '^$' -bench . (PostgreSQL too when
// CHAPPE_TEST_POSTGRES is set).

func benchBackends(b *testing.B, f func(b *testing.B, e *env)) {
	for _, backend := range sqltest.Backends() {
		b.Run(backend, func(b *testing.B) { f(b, newEnv(b, backend)) })
	}
}

// BenchmarkLogin is dominated by bcrypt (cost 10), by design.
func BenchmarkLogin(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *env) {
		e.register(b, "alice", "correct horse")
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// A fixed device ID keeps the tables from growing with b.N.
				if _, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "alice", Password: "correct horse", DeviceID: "BENCH"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchTokens registers users and returns a token of each.
func benchTokens(b *testing.B, e *env, n int) []string {
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = e.register(b, fmt.Sprintf("user%d", i), "").AccessToken
	}
	return tokens
}

func benchQuery(b *testing.B, e *env, tokens []string) {
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			resp, err := userapi.QueryAccessToken.Call(e.ctx, e.base.Bus, &userapi.QueryAccessTokenRequest{AccessToken: tokens[i%len(tokens)]})
			if err != nil || resp.Device == nil {
				b.Errorf("query: %+v, %v", resp, err)
				return
			}
		}
	})
}

// BenchmarkQueryAccessToken: a bus round trip answered from the userapi's
// cache.
func BenchmarkQueryAccessToken(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *env) {
		benchQuery(b, e, benchTokens(b, e, 100))
	})
}

// BenchmarkQueryAccessTokenDB: a bus round trip and a database lookup.
func BenchmarkQueryAccessTokenDB(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *env) {
		tokens := benchTokens(b, e, 100)
		userapi.DisableTokenCache(e.api)
		benchQuery(b, e, tokens)
	})
}

// BenchmarkTokenResolver: what clientapi pays per request once a token is
// cached in its process.
func BenchmarkTokenResolver(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *env) {
		tokens := benchTokens(b, e, 100)
		resolve := userapi.NewTokenResolver(e.base.Bus)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if dev, err := resolve(e.ctx, tokens[i%len(tokens)]); err != nil || dev == nil {
					b.Errorf("resolve: %+v, %v", dev, err)
					return
				}
			}
		})
	})
}
