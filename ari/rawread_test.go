package ari_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/internal/rawsock"
)

// The client's own HTTP transport (REST and the events websocket) reads its
// connections with raw system calls (internal/rawsock), with or without a receive
// buffer asked; events flow over it.
func TestOwnTransportReadsRaw(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw reads are Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, size := range []int{0, 256 << 10} {
		srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
		rec := newRecorder()
		cfg := rec.config(srv, t)
		cfg.ReceiveBuffer = size
		c := dialRecorder(t, cfg)
		rec.expectState(t, ari.StateConnected)
		conn, err := ari.DialOwn(context.Background(), c, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if _, ok := conn.(*rawsock.Conn); !ok {
			t.Errorf("receive buffer %d: the transport's connection is %T, want *rawsock.Conn", size, conn)
		}
		// The client is connected once its upgrade is answered; the fake counts the
		// websocket a moment later.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.WaitClients(ctx, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(context.Background(), varset(1, "raw")); err != nil {
			t.Fatal(err)
		}
		if got := seqOf(t, rec.next(t)); got != 1 {
			t.Errorf("receive buffer %d: event %d, want 1", size, got)
		}
	}
}
