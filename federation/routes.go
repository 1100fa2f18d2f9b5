package federation

import "context"

// PLACEHOLDER (F4 replaces this file).
type inboundState struct{}

func (f *Federation) startRoutes(context.Context) error { return nil }
