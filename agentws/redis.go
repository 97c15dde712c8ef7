package agentws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster keeps its state in one (non-cluster) Redis, under Options.RedisPrefix:
//
//	<prefix>pop:<id>        hash: agent, call, target, exp (unix ms), payload, rev, acked, opened;
//	                        expires with the pop (PEXPIREAT exp)
//	<prefix>agent:<agent>   sorted set of the agent's pop ids, scored by exp
//	<prefix>call:<call id>  set of "<agent>:<pop id>" of the call
//	<prefix>ended:<call id> marker that the call ended (for PopTTL): late pops are refused
//	<prefix>events          pub/sub channel every instance subscribes to
//
// Storing a pop is an atomic "insert if absent" (a Lua script), so when several instances
// pop the same id only the first stores and publishes it: each agent connection gets it
// once, and an agent that reconnects to any instance gets it replayed from the hash.

var (
	redisAddScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if tonumber(ARGV[10]) > tonumber(redis.call('HGET', KEYS[1], 'rev') or '0') then
    redis.call('HSET', KEYS[1], 'payload', ARGV[5], 'rev', ARGV[10])
    if redis.call('HGET', KEYS[1], 'acked') == '1' then return 0 end
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'agent', ARGV[1], 'call', ARGV[2], 'target', ARGV[3], 'exp', ARGV[4], 'payload', ARGV[5], 'rev', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[9])
if n > 0 then redis.call('ZPOPMIN', KEYS[2], n) end
return 1`)

	redisMarkScript = redis.NewScript(`
local a = redis.call('HGET', KEYS[1], 'agent')
if not a or a ~= ARGV[1] then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[2], '1')`)

	redisEndScript = redis.NewScript(`
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
local members = redis.call('SMEMBERS', KEYS[1])
for _, m in ipairs(members) do
  local sep = string.find(m, ':', 1, true)
  local agent = string.sub(m, 1, sep - 1)
  local id = string.sub(m, sep + 1)
  redis.call('DEL', ARGV[2] .. 'pop:' .. id)
  redis.call('ZREM', ARGV[2] .. 'agent:' .. agent, id)
end
redis.call('DEL', KEYS[1])
return members`)
)

// redisStore is the cluster popStore.
type redisStore struct {
	rdb         *redis.Client
	prefix      string
	ttl         func() time.Duration // key lifetime of the agent and call indexes (the hub's PopTTL)
	maxPerAgent int
}

func (s *redisStore) popKey(id string) string     { return s.prefix + "pop:" + id }
func (s *redisStore) agentKey(agent int) string   { return s.prefix + "agent:" + strconv.Itoa(agent) }
func (s *redisStore) callKey(call string) string  { return s.prefix + "call:" + call }
func (s *redisStore) endedKey(call string) string { return s.prefix + "ended:" + call }

func (s *redisStore) add(ctx context.Context, p *pendingPop) (bool, error) {
	agent := strconv.Itoa(p.AgentID)
	res, err := redisAddScript.Run(ctx, s.rdb,
		[]string{s.popKey(p.ID), s.agentKey(p.AgentID), s.callKey(p.CallID), s.endedKey(p.CallID)},
		agent, p.CallID, p.Target, p.ExpiresAt.UnixMilli(), p.Payload, s.ttl().Milliseconds(),
		agent+":"+p.ID, p.ID, s.maxPerAgent, p.Rev).Int()
	if err != nil {
		return false, fmt.Errorf("store pop %s in Redis: %w", p.ID, err)
	}
	return res == 1, nil
}

func (s *redisStore) live(ctx context.Context, agentID int, now time.Time) ([]pendingPop, error) {
	key := s.agentKey(agentID)
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	//lint:ignore SA1019 ZRANGEBYSCORE works on every Redis; ZRANGE … BYSCORE needs Redis ≥ 6.2.
	ids, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "(" + nowMs, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("list pending pops of agent %d in Redis: %w", agentID, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, key, "-inf", nowMs)
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.popKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read pending pops of agent %d from Redis: %w", agentID, err)
	}
	var out []pendingPop
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 || h["agent"] != strconv.Itoa(agentID) {
			continue // ended or expired since the index was read
		}
		exp, err := strconv.ParseInt(h["exp"], 10, 64)
		if err != nil {
			continue
		}
		p := pendingPop{
			ID: ids[i], AgentID: agentID, CallID: h["call"], Target: h["target"],
			ExpiresAt: time.UnixMilli(exp), Payload: []byte(h["payload"]),
			Rev:   atoiOrZero(h["rev"]),
			Acked: h["acked"] == "1", Opened: h["opened"] == "1",
		}
		if p.replayable(now) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ExpiresAt.Before(out[j].ExpiresAt) })
	return out, nil
}

func (s *redisStore) mark(ctx context.Context, agentID int, id string, opened bool) (markResult, error) {
	field := "acked"
	if opened {
		field = "opened"
	}
	res, err := redisMarkScript.Run(ctx, s.rdb, []string{s.popKey(id)}, strconv.Itoa(agentID), field).Int()
	if err != nil {
		return markUnknown, fmt.Errorf("mark pop %s %s in Redis: %w", id, field, err)
	}
	switch res {
	case 1:
		return markFirst, nil
	case 0:
		return markAgain, nil
	}
	return markUnknown, nil
}

func (s *redisStore) endCall(ctx context.Context, callID string, ttl time.Duration) ([]int, error) {
	members, err := redisEndScript.Run(ctx, s.rdb, []string{s.callKey(callID), s.endedKey(callID)},
		ttl.Milliseconds(), s.prefix).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("end call %s in Redis: %w", callID, err)
	}
	seen := map[int]bool{}
	var agents []int
	for _, m := range members {
		a, _, _ := strings.Cut(m, ":")
		id, err := strconv.Atoi(a)
		if err == nil && !seen[id] {
			seen[id] = true
			agents = append(agents, id)
		}
	}
	sort.Ints(agents)
	return agents, nil
}

// atoiOrZero reads a stored revision; pops stored before revisions existed are 0.
func atoiOrZero(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
