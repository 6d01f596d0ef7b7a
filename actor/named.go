package actor

import (
	"context"
	"time"
)

// The verbs by name. A local name (".lobby") is resolved on this node. A
// global name is resolved through Config.Names to the node that holds it,
// and that node delivers the message to the name's holder as it knows it,
// so a name whose actor stopped, or whose node's lease may have lapsed, is
// answered with ErrNameNotFound rather than reaching a stale holder.

// lookupTimeout bounds the name lookup of a verb without a ctx.
func (n *Node) lookupTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
}

// SendName sends msg one-way to the actor registered under name, from
// outside any actor. It fails with ErrNameNotFound when nobody holds the
// name, and as Send does otherwise.
func (n *Node) SendName(name string, msg any) error {
	if n.state.Load() == nodeClosed {
		return ErrNodeClosed
	}
	return n.sendNamed(PID{}, name, msg)
}

func (n *Node) sendNamed(from PID, name string, msg any) error {
	ctx, cancel := n.lookupTimeout()
	to, err := n.resolveName(ctx, name)
	cancel()
	if err != nil {
		return err
	}
	return n.sendEnvelope(&Envelope{Sender: from, Target: to, TargetName: name, Message: msg})
}

// CallName is Call to the actor registered under name.
func (n *Node) CallName(ctx context.Context, name string, msg any) (any, error) {
	if n.state.Load() == nodeClosed {
		return nil, ErrNodeClosed
	}
	return n.callNamed(ctx, PID{}, name, msg)
}

func (n *Node) callNamed(ctx context.Context, from PID, name string, msg any) (any, error) {
	to, err := n.resolveName(ctx, name)
	if err != nil {
		return nil, err
	}
	return n.call(ctx, from, to, name, msg)
}

// RequestName is Request to the actor registered under name. The name is
// resolved before RequestName returns; an unknown name is its error, and
// cb does not run.
func (n *Node) RequestName(name string, msg any, timeout time.Duration, cb ReplyFunc) error {
	ctx, cancel := n.lookupTimeout()
	to, err := n.resolveName(ctx, name)
	cancel()
	if err != nil {
		return err
	}
	return n.request(to, name, msg, timeout, cb)
}

// SendName sends msg one-way to the actor registered under name, with this
// actor as the sender.
func (c *Context) SendName(name string, msg any) error {
	return c.p.node.sendNamed(c.p.pid, name, msg)
}

// CallName is Call to the actor registered under name.
func (c *Context) CallName(ctx context.Context, name string, msg any) (any, error) {
	return c.p.node.callNamed(ctx, c.p.pid, name, msg)
}

// RequestName is Request to the actor registered under name; the callback
// runs in this actor's turn, as with Request. The name is resolved before
// RequestName returns.
func (c *Context) RequestName(name string, msg any, timeout time.Duration, cb ReplyFunc) error {
	ctx, cancel := c.p.node.lookupTimeout()
	to, err := c.p.node.resolveName(ctx, name)
	cancel()
	if err != nil {
		return err
	}
	return c.request(to, name, msg, timeout, cb)
}
