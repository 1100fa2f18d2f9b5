package federation

import "context"

// PLACEHOLDER (F1 replaces this file).
type keyService struct{}

func (f *Federation) startKeys(context.Context) error { return nil }
