package federation

import "context"

// PLACEHOLDER (F3 replaces this file).
type senderWiring struct{}

func (f *Federation) startSender(context.Context) error { return nil }
