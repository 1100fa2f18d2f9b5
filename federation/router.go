package federation

import "context"

// PLACEHOLDER (F1 replaces this file).
type inboundRouter struct{}

func (f *Federation) startRouter(context.Context) error   { return nil }
func (f *Federation) startListener(context.Context) error { return nil }
