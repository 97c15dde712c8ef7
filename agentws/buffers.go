package agentws

import (
	"bufio"
	"net"
	"net/http"
)

// Buffer sizes of an agent websocket after the upgrade. net/http hands a hijacked
// connection its 4 KiB read buffer and a new 4 KiB write buffer, and the websocket keeps
// both for the connection's lifetime: 8 KiB per idle agent page. Client messages are
// acks and pings of well under 512 bytes (a larger frame is read straight into the
// message past the buffer), and a pop of up to 2 KiB is still written in one call.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 2048
)

// smallBuffers wraps w so that the websocket library's Hijack gets buffers of
// wsReadBuffer and wsWriteBuffer bytes instead of net/http's. A writer that cannot be
// hijacked is returned as is, so the library still refuses the upgrade before its 101.
func smallBuffers(w http.ResponseWriter) http.ResponseWriter {
	for rw := w; ; {
		switch t := rw.(type) {
		case http.Hijacker:
			return sizedHijacker{w}
		case interface{ Unwrap() http.ResponseWriter }:
			rw = t.Unwrap()
		default:
			return w
		}
	}
}

type sizedHijacker struct{ http.ResponseWriter }

// Hijack hijacks the underlying connection and replaces its buffers. A client that
// sent frames before the 101 (browsers wait for it) keeps net/http's read buffer, which
// holds them.
func (s sizedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	br := brw.Reader
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(nc, wsReadBuffer)
	}
	if err := brw.Writer.Flush(); err != nil { // net/http's writer, normally empty
		nc.Close()
		return nil, nil, err
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, wsWriteBuffer)), nil
}
