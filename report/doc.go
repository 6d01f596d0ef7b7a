// Package report delivers the failures of a guild node (the panics it
// recovers in user code, its supervisors' escalations and the actors
// stopped for a spent restart budget, see
// actor.Reporter) to people: as JSON to a webhook ([Webhook]) and as
// e-mail over SMTP ([SMTP]), or to several such reporters at once
// ([Fanout]). The cluster file's report section sets them up for a node
// started with package app; a Go program sets actor.Config.Reporter.
//
// # Never in the actor's way
//
// Report only appends the failure to a bounded queue and returns: the
// actor that failed never waits for a network. When the queue is full the
// failure is dropped and counted, and the next batch delivered says how
// many were lost since the previous one ([Batch.Dropped]). Each reporter
// delivers on one goroutine of its own, in batches of at most Batch
// failures, at most one delivery per Interval (the rate limit): a burst of
// ten thousand panics costs a handful of requests or e-mails, not ten
// thousand. A failed delivery is retried with exponential backoff and
// jitter when the error may pass (a network error, an HTTP 5xx, 429 or
// 408, no sooner than the server's Retry-After, an SMTP 4xx), and not when
// it will not (another HTTP 4xx, an SMTP 5xx); a batch that
// still fails is counted as lost, and the next batch says so too.
//
// # Stopping
//
// Close delivers what is queued (in batches, without waiting out the
// interval), within the deadline of its ctx (DefaultCloseTimeout when it
// has none), then stops the goroutine; a delivery still in flight at the
// deadline is cancelled and its failures counted as lost. Report after
// Close drops and counts. Close is safe to call twice.
//
// # The JSON batch
//
// A webhook receives each batch as one POST with Content-Type
// application/json:
//
//	{
//	  "source": "gate1",                 // WebhookConfig.Source; omitted when empty
//	  "sent": "2026-01-02T15:04:05.123Z",
//	  "dropped": 0,                      // failures lost since the previous batch
//	  "failures": [{
//	    "kind": "panic",                 // or "escalation", "budget"
//	    "node": "1.2.1",                 // the node's address
//	    "pid": "1.2.1/42",               // omitted outside any actor
//	    "names": [".room"],              // the actor's names; omitted when none
//	    "parent": "1.2.1/7",             // escalations: the actor escalated to
//	    "where": "receive",              // see actor.Failure.Where
//	    "message_type": "*arenapb.Move", // the message's type, never its contents
//	    "reason": "index out of range",
//	    "stack": "goroutine 12 [running]:\n...", // at most actor.MaxFailureStack bytes
//	    "time": "2026-01-02T15:04:05.001Z"
//	  }]
//	}
//
// An e-mail carries the same fields as plain text, its subject naming the
// source, the node and the number of failures.
package report
