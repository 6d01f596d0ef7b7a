package memstore_test

import (
	"testing"

	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
	"github.com/guildkit/guild/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memstore.New() })
}

func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, memstore.New()) }
func BenchmarkLoad(b *testing.B) { storetest.BenchLoad(b, memstore.New()) }
