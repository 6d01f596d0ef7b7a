package amqp

import (
	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
)

// DialBroker connects the adapter alone, without package bus's transport
// on top, reading inbox into r: for tests of what Publish does.
func DialBroker(c Config, inbox string, r bus.Receiver) (bus.Broker, error) {
	return dial(c.withDefaults(), transport.Setup{Self: actor.MustAddr(1, 1, 99)}, inbox, r)
}

// MarkedFailed reports whether br holds a failure for the queue named to:
// the broker returned or nacked a frame for it, and no Publish has taken
// the failure yet.
func MarkedFailed(br bus.Broker, to string) bool {
	b := br.(*broker)
	b.fmu.Lock()
	defer b.fmu.Unlock()
	_, ok := b.failed[to]
	return ok
}
