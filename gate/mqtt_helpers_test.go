package gate_test

import "github.com/guildkit/guild/gate/internal/mqtttest"

// The MQTT client helpers, shared with package gate/mqtt's tests (the tests that run every listener).
type (
	mqttMsg   = mqtttest.Msg
	mqttInbox = mqtttest.Inbox
)

var (
	mqttStr   = mqtttest.Str
	mqttUnstr = mqtttest.Unstr
	mqttWait  = mqtttest.WaitToken
	dial5     = mqtttest.Dial5
)
