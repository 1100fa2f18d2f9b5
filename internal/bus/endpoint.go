package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Endpoint is a typed request/reply subject: the component that owns it
// Serves it, the others Call it. Several processes may serve the same
// endpoint; NATS balances requests between them (one queue group).
type Endpoint[Req, Resp any] struct {
	Subject string
	// Timeout bounds a call (when the caller's context has no deadline)
	// and its handler; zero is DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a Call whose context has no deadline, and a
// handler, unless the endpoint says otherwise.
const DefaultTimeout = 30 * time.Second

func (e Endpoint[Req, Resp]) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return DefaultTimeout
}

type envelope[Resp any] struct {
	Resp *Resp        `json:"r,omitempty"`
	Err  *mxerr.Error `json:"e,omitempty"`
}

// ErrUnavailable is returned when no process serves an endpoint.
var ErrUnavailable = errors.New("no process serves this endpoint")

// Call sends req and waits for the reply. A Matrix error raised by the
// handler comes back as *mxerr.Error. An endpoint this process serves is
// answered here (local.go), through the same encoding, without NATS.
func (e Endpoint[Req, Resp]) Call(ctx context.Context, b *Bus, req *Req) (*Resp, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", e.Subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout())
		defer cancel()
	}
	var reply []byte
	if h := b.localHandler(e.Subject); h != nil {
		if reply, err = h.call(ctx, data); err != nil {
			return nil, fmt.Errorf("call %s: %w", e.Subject, err)
		}
	} else {
		msg, err := b.NC.RequestWithContext(ctx, b.Subject(e.Subject), data)
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				return nil, mxerr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "%s is not running", e.Subject)
			}
			return nil, fmt.Errorf("call %s: %w", e.Subject, err)
		}
		reply = msg.Data
	}
	var env envelope[Resp]
	if err := json.Unmarshal(reply, &env); err != nil {
		return nil, fmt.Errorf("decode %s reply: %w", e.Subject, err)
	}
	if env.Err != nil {
		return nil, env.Err
	}
	if env.Resp == nil {
		env.Resp = new(Resp)
	}
	return env.Resp, nil
}

// Serve answers the endpoint with h until the bus closes. Each request runs
// in its own goroutine (bounded), so a slow request does not hold others.
// Calls made in this process are answered directly (local.go).
func (e Endpoint[Req, Resp]) Serve(b *Bus, h func(context.Context, *Req) (*Resp, error)) error {
	subject := b.Subject(e.Subject)
	_, err := b.NC.QueueSubscribe(subject, "chappe", func(msg *nats.Msg) {
		b.inflight <- struct{}{}
		go func() {
			defer func() { <-b.inflight }()
			if err := msg.Respond(e.answer(b, msg.Data, h)); err != nil {
				b.log.Warn("reply failed", "subject", e.Subject, "err", err)
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("serve %s: %w", subject, err)
	}
	b.serveLocally(e.Subject, func(data []byte) []byte { return e.answer(b, data, h) })
	return nil
}

// answer runs h on an encoded request and encodes its reply. The handler's
// context is its own, bounded by the endpoint's timeout: a caller that
// goes away does not cut a request half done.
func (e Endpoint[Req, Resp]) answer(b *Bus, data []byte, h func(context.Context, *Req) (*Resp, error)) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout())
	defer cancel()
	var env envelope[Resp]
	req := new(Req)
	if err := json.Unmarshal(data, req); err != nil {
		env.Err = mxerr.BadJSON("malformed %s request: %v", e.Subject, err)
	} else {
		resp, err := safeCall(ctx, req, h)
		if err != nil {
			if me, ok := mxerr.As(err); ok {
				env.Err = me
			} else {
				b.log.Error("request handler failed", "subject", e.Subject, "err", err)
				env.Err = mxerr.Unknown("internal error")
			}
		} else {
			env.Resp = resp
		}
	}
	reply, err := json.Marshal(&env)
	if err != nil {
		b.log.Error("encode reply", "subject", e.Subject, "err", err)
		reply, _ = json.Marshal(&envelope[Resp]{Err: mxerr.Unknown("internal error")})
	}
	return reply
}

// safeCall turns a handler panic into an error: one bad request must not
// take the process down.
func safeCall[Req, Resp any](ctx context.Context, req *Req, h func(context.Context, *Req) (*Resp, error)) (resp *Resp, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return h(ctx, req)
}
