// Command go-compat runs Go Kafka clients (franz-go, IBM/sarama) against a broker.
//
//	go-compat BOOTSTRAP SCENARIO
//
// Scenarios: franz-group (kgo producer + consumer group, every record consumed, offsets
// committed), franz-admin (kadm create/list/describe/delete topics, list groups),
// sarama-sync (SyncProducer offsets), sarama-group (ConsumerGroup consumes everything).
// Prints "PASS <scenario>" and exits 0, or "FAIL <scenario>: <reason>" and exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const records = 2000

func main() {
	if len(os.Args) != 3 {
		fmt.Println("usage: go-compat BOOTSTRAP SCENARIO")
		os.Exit(2)
	}
	bootstrap, scenario := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var err error
	switch scenario {
	case "franz-group":
		err = franzGroup(ctx, bootstrap)
	case "franz-admin":
		err = franzAdmin(ctx, bootstrap)
	case "sarama-sync":
		err = saramaSync(bootstrap)
	case "sarama-group":
		err = saramaGroup(ctx, bootstrap)
	default:
		err = fmt.Errorf("unknown scenario")
	}
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", scenario, err)
		os.Exit(1)
	}
	fmt.Printf("PASS %s\n", scenario)
}

func franzGroup(ctx context.Context, bootstrap string) error {
	topic := "franz-group"
	admin, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer producer.Close()
	for i := 0; i < records; i++ {
		producer.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i))}, nil)
	}
	if err := producer.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("franz-g"),
		kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer consumer.Close()
	seen := map[string]bool{}
	for len(seen) < records {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consumed %d of %d", len(seen), records)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch: %v", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	offsets, err := kadm.NewClient(admin).FetchOffsets(ctx, "franz-g")
	if err != nil {
		return fmt.Errorf("fetch offsets: %w", err)
	}
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != records {
		return fmt.Errorf("committed offsets sum to %d, want %d", total, records)
	}
	return nil
}

func franzAdmin(ctx context.Context, bootstrap string) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000")}, "franz-admin"); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	detail, ok := topics["franz-admin"]
	if !ok || len(detail.Partitions) != 3 {
		return fmt.Errorf("topic not listed with 3 partitions: %+v", detail)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, "franz-admin")
	if err != nil {
		return fmt.Errorf("describe configs: %w", err)
	}
	found := false
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil && *c.Value == "60000" {
				found = true
			}
		}
	}
	if !found {
		return errors.New("retention.ms=60000 not described")
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil || len(meta.Brokers) != 1 || meta.Cluster == "" {
		return fmt.Errorf("broker metadata: %v %+v", err, meta)
	}
	if _, err := adm.ListGroups(ctx); err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	resp, err := adm.DeleteTopics(ctx, "franz-admin")
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if e := resp["franz-admin"].Err; e != nil {
		return fmt.Errorf("delete: %w", e)
	}
	return nil
}

func saramaConfig() *sarama.Config {
	config := sarama.NewConfig()
	config.Version = sarama.V3_6_0_0
	config.Producer.Return.Successes = true
	config.Producer.RequiredAcks = sarama.WaitForAll
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	return config
}

func saramaSync(bootstrap string) error {
	producer, err := sarama.NewSyncProducer([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer producer.Close()
	for i := 0; i < 100; i++ {
		partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "sarama-sync", Partition: 0,
			Value: sarama.StringEncoder(fmt.Sprint("v", i))})
		if err != nil {
			return err
		}
		if partition != 0 || offset != int64(i) {
			return fmt.Errorf("message %d at %d/%d", i, partition, offset)
		}
	}
	return nil
}

type handler struct {
	mu   sync.Mutex
	seen map[string]bool
	done chan struct{}
	once sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)] = true
		n := len(h.seen)
		h.mu.Unlock()
		s.MarkMessage(m, "")
		if n >= records {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func saramaGroup(ctx context.Context, bootstrap string) error {
	config := saramaConfig()
	client, err := sarama.NewClient([]string{bootstrap}, config)
	if err != nil {
		return err
	}
	defer client.Close()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return err
	}
	for i := 0; i < records; i++ {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "sarama-group", Value: sarama.StringEncoder(fmt.Sprint("v", i))}); err != nil {
			return err
		}
	}
	group, err := sarama.NewConsumerGroup([]string{bootstrap}, "sarama-g", config)
	if err != nil {
		return err
	}
	defer group.Close()
	h := &handler{seen: map[string]bool{}, done: make(chan struct{})}
	groupCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for groupCtx.Err() == nil {
			if err := group.Consume(groupCtx, []string{"sarama-group"}, h); err != nil {
				return
			}
		}
	}()
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("consumed %d of %d", len(h.seen), records)
	}
}
