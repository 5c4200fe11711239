// Command loadgen drives client load on every etcd member separately while a tool
// defragments: sequential puts, linearizable gets and a lease keep-alive stream per
// member, each on its own connection, with at most one put and one get per member
// every -interval. It runs until its stdin closes, then prints every operation as one
// JSON array on stdout: member, kind, start (ms since the epoch), latencyMs, ok and, for
// a failed one, its error.
//
// It is written in Go so that the load costs little CPU: the benchmark shares two
// cores between three etcd members, the Talos API test servers, the tool under test
// and this load, and a JavaScript gRPC client spent most of a core on it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// A per-operation deadline, so that a blocked member shows as slow, then failed, operations.
const opTimeout = 10 * time.Second

type op struct {
	Member    int     `json:"member"`
	Kind      string  `json:"kind"`
	Start     float64 `json:"start"`
	LatencyMs float64 `json:"latencyMs"`
	OK        bool    `json:"ok"`
	Error     string  `json:"error,omitempty"`
}

type recorder struct {
	mu  sync.Mutex
	ops []op
}

func (r *recorder) add(member int, kind string, start time.Time, err error) {
	o := op{
		Member:    member,
		Kind:      kind,
		Start:     float64(start.UnixNano()) / 1e6,
		LatencyMs: float64(time.Since(start).Nanoseconds()) / 1e6,
		OK:        err == nil,
	}
	if err != nil {
		o.Error = err.Error()
	}
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
}

func newClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// loop runs one operation at a time; with an interval, each starts on the next tick
// after the previous one ended (a late operation is not made up for with a burst).
func loop(ctx context.Context, rec *recorder, member int, kind string, interval time.Duration, call func(context.Context) error) {
	next := time.Now()
	for ctx.Err() == nil {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		start := time.Now()
		next = start.Add(interval)
		opCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		err := call(opCtx)
		cancel()
		rec.add(member, kind, start, err)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// keepAlive keeps a 10 s lease alive every 250 ms on one stream; each answer is one
// operation, so a member that stops answering shows as a long keep-alive latency.
func keepAlive(ctx context.Context, rec *recorder, member int, cli *clientv3.Client) {
	grantCtx, cancel := context.WithTimeout(ctx, opTimeout)
	lease, err := cli.Grant(grantCtx, 10)
	cancel()
	if err != nil {
		return
	}
	stream, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(ctx)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease.ID)}); err != nil {
			rec.add(member, "keepalive", start, err)
			return
		}
		answer, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				rec.add(member, "keepalive", start, err)
			}
			return
		}
		if answer.TTL <= 0 {
			err = errors.New("the lease expired")
		}
		rec.add(member, "keepalive", start, err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func run() error {
	endpoints := flag.String("endpoints", "", "the members' client URLs, comma separated")
	interval := flag.Duration("interval", 10*time.Millisecond, "start a put and a get per member at most this often (0: back to back)")
	flag.Parse()
	if *endpoints == "" {
		return errors.New("-endpoints is required")
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	rec := &recorder{}
	var wg sync.WaitGroup
	var clients []*clientv3.Client
	for member, endpoint := range strings.Split(*endpoints, ",") {
		// One connection per loop, so that one blocked stream does not delay the others.
		var three [3]*clientv3.Client
		for i := range three {
			cli, err := newClient(endpoint)
			if err != nil {
				return fmt.Errorf("connecting to %s: %w", endpoint, err)
			}
			three[i] = cli
			clients = append(clients, cli)
		}
		key := "/load/" + strconv.Itoa(member)
		wg.Add(3)
		go func() {
			defer wg.Done()
			loop(ctx, rec, member, "put", *interval, func(c context.Context) error {
				_, err := three[0].Put(c, key, strconv.FormatInt(time.Now().UnixNano(), 10))
				return err
			})
		}()
		go func() {
			defer wg.Done()
			loop(ctx, rec, member, "get", *interval, func(c context.Context) error {
				_, err := three[1].Get(c, key)
				return err
			})
		}()
		go func() {
			defer wg.Done()
			keepAlive(ctx, rec, member, three[2])
		}()
	}
	fmt.Fprintln(os.Stderr, "started")
	// Runs until the benchmark closes stdin.
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(opTimeout + time.Second):
	}
	for _, c := range clients {
		_ = c.Close()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(rec.ops)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
