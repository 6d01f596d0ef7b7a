package gatekcp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestDeriveKey pins the key derivation that docs/PROTOCOL.md gives
// (HKDF-SHA256, no salt, info "guild gate/kcp aes-256", 32 bytes): the
// vector was computed outside Go, with Python's hmac. A secret shorter
// than MinKeyLen is refused without being repeated.
func TestDeriveKey(t *testing.T) {
	key, err := DeriveKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(key), "300be10377ab8368c9253f6641386dd2cdf3f26c462aed753464701d09d4c7fd"; got != want {
		t.Errorf("DeriveKey = %s, want %s", got, want)
	}
	other, err := DeriveKey([]byte("0123456789abcdef0123456789abcdeF"))
	if err != nil || bytes.Equal(key, other) {
		t.Errorf("another secret's key: %x, %v", other, err)
	}
	_, err = DeriveKey([]byte("sekrit-15-bytes"))
	if !errors.Is(err, ErrShortKey) || strings.Contains(err.Error(), "sekrit") || !strings.Contains(err.Error(), "15 bytes, fewer than 16") {
		t.Errorf("a 15-byte secret: %v, want ErrShortKey saying its length only", err)
	}
	if b, err := (Options{}).blockCrypt(); b != nil || err != nil {
		t.Errorf("no key: %v, %v, want no encryption", b, err)
	}
}

// TestPacketEncryption checks what docs/PROTOCOL.md says of an encrypted
// datagram, for implementers of other clients: it is AES-256 in CFB mode
// (128-bit segments) over the whole datagram, under DeriveKey's key and
// kcp-go's fixed IV, as the standard library's CFB computes it.
func TestPacketEncryption(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	bc, err := Options{Key: secret}.blockCrypt()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := DeriveKey(secret)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := hex.DecodeString("a7734f9c12ac1b01a415f2c1fc78e66b")
	for _, n := range []int{20, 21, 24 + 16, 24 + 37, 1400} { // nonce, CRC, then a KCP segment of n-20 bytes
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(i*7 + n)
		}
		got := make([]byte, n)
		bc.Encrypt(got, plain)
		want := make([]byte, n)
		//lint:ignore SA1019 CFB is what kcp-go uses: the test checks it
		cipher.NewCFBEncrypter(block, iv).XORKeyStream(want, plain)
		if !bytes.Equal(got, want) {
			t.Errorf("%d bytes: kcp-go's encryption differs from AES-256-CFB with the documented IV", n)
		}
		back := make([]byte, n)
		bc.Decrypt(back, got)
		if !bytes.Equal(back, plain) {
			t.Errorf("%d bytes: decrypting gives other bytes", n)
		}
	}
}
