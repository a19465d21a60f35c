-- Swarm detection for a whole batch in one call: lockstep farms and mutual-like rings.
--
-- Evidence (per like, all keyed by post / pair / account, so any worker sees the same graph):
--   * lockstep: who liked the post within +-sync of this like (`sw:pl:{post}`); each such
--     pair gains 1 / ln(post likers + offset) (FRAUDAR's column weight: co-liking a popular
--     post says little), times quick_boost when both likes were quick, decayed with a
--     half-life (`sw:pw:{lower id}` field = higher id). A pair whose weight reaches
--     edge_weight and whose co-likes are a large enough share of both accounts' likes
--     (cosine >= edge_cosine: heavy users co-like by chance) becomes an edge
--     (`sw:nb:l:{account}`, score = last evidence time).
--   * ring: likes between two accounts, both ways, since the pair's first like within the
--     horizon (`sw:rp:{lower id}` field = higher id); both ways >= 1 and together
--     >= recip_min_likes make an edge (`sw:nb:r:{account}`).
-- Groups (only where edges are new): an edge inside a group is nothing new; an edge from a
-- member lets the other end join if it has enough edges into the group; otherwise both ends
-- wait for a search (`sw:wait:{kind}`; searches draw on a budget that every new like adds
-- to, `sw:budget:{kind}`), which peels the account's neighbourhood (drop the
-- weakest account until each is linked to >= min_density of the others and, for rings,
-- gives >= min_share of its likes to the rest); a dense set of >= min_size founds a group or
-- grows the group holding a quarter of it. So does a lockstep burst: burst_min_likers quick
-- likes on one post within sync_seconds, most of its likes then (`sw:pb:{post}`). A lockstep
-- group also grows CopyCatch's way: accounts that like its posts in sync with it join. Group
-- ids are content hashes fixed when the group is founded and found again through the members
-- (`sw:gm:{kind}:{account}`), so a group keeps its id on every worker and after restarts.
-- Reports: the like that founds a group reports it; the like that has grown it by
-- realert_growth since its last report reports it again (at least realert_min_gap, the alert
-- gate's cool-down, after it), and so does the first like realert_seconds after the last
-- report if the group has members that report did not name (`sw:due`). A report names the
-- members as of its like.
--
-- Batches: each like is taken to the end (its evidence, the edges it made, the searches the
-- budget allows after it, the reports it triggers) before the next one, and nothing depends
-- on where the batch ends (no per-call budget or sampling counter; activity counts only likes
-- before the like's time, and the like itself; group records are cached for the call but every
-- decision sees them as of the like). So the same likes in the same order give the same
-- reports, with the same trigger events, however they are cut into batches.
--
-- ARGV: namespace, the settings (swarm.py `SwarmDetector.settings`, same order), then one
-- flat JSON array, per like: event id, actor, post, author, ts, flags (1: quick, dwell under
-- quick_dwell_ms; 2: checks the caps of the pair hashes it adds fields to). One JSON document rather than six arguments per
-- like: packing each argument costs the client more than decoding the document costs here.
-- Returns, per group to report, in the order of the likes: event index (1-based) of the
-- trigger, group id, kind ("l" | "r"), size, density, posts, first ts, last ts, new members,
-- edges, bursts, then the member count and members.
--
-- Keys are built here from ARGV, so this script needs a single Redis node (as windows.lua).

local ns = ARGV[1]
local i = 2
local function arg()
  local v = ARGV[i]
  i = i + 1
  return v
end
local sync = tonumber(arg())
local post_horizon = tonumber(arg())
local post_cap = tonumber(arg())
local hot_likers = tonumber(arg())
local max_colikers = tonumber(arg())
local pop_offset = tonumber(arg())
local pair_half_life = tonumber(arg())
local edge_weight = tonumber(arg())
local edge_cosine = tonumber(arg())
local activity_prefix = ns .. ':w:' .. arg() .. ':'
local activity_window = tonumber(arg())
local edge_horizon = tonumber(arg())
local max_neighbors = tonumber(arg())
local max_candidates = tonumber(arg())
local max_pairs = tonumber(arg())
local recip_min_likes = tonumber(arg())
local fan_horizon = tonumber(arg())
local min_size = { l = tonumber(arg()), r = 0 }
local min_density = { l = tonumber(arg()), r = 0 }
min_size.r = tonumber(arg())
min_density.r = tonumber(arg())
local ring_min_share = tonumber(arg())
local ring_max_candidates = tonumber(arg())
local join_edges_cap = tonumber(arg())
local max_group_size = tonumber(arg())
local max_work = tonumber(arg())
local work_per_like = tonumber(arg())
local realert_growth = tonumber(arg())
local realert_seconds = tonumber(arg())
local realert_min_gap = tonumber(arg())
local max_waiting = tonumber(arg())
local ttl = tonumber(arg())
local post_ttl = tonumber(arg())
local edge_ttl = tonumber(arg())
local sync_weighting = tonumber(arg())
local quick_boost = tonumber(arg())
local group_post_members = tonumber(arg())
local join_posts = tonumber(arg())
local join_post_share = tonumber(arg())
local group_post_share = tonumber(arg())
local burst_min_likers = tonumber(arg())
local burst_quick_share = tonumber(arg())

local P = ns .. ':sw:'
local function fmt(x) return string.format('%.6f', x) end

-- ------------------------------------------------------------------------------- helpers

-- The new fields a sampled like adds (one like in 16, by a hash of its event id: swarm.py)
-- check their hash's size: caps hold within a few percent, at a sixteenth of the cost, and
-- which likes check does not depend on how the stream is cut into batches.
local check_caps = false

local function split(text)
  local out = {}
  for part in string.gmatch(text, '[^|]+') do out[#out + 1] = part end
  return out
end

-- Pair values are packed doubles (struct): decoding and encoding five numbers as text cost
-- ~7 us a pair, a sizeable share of the whole script. Values still in the text format of
-- earlier versions ("a|b|c|...") are read too, so an upgrade keeps its evidence.
local PAIR_LW = '<ddddd'  -- lockstep: weight, co-likes, last, first, strong
local PAIR_RING = '<dddd' -- ring: likes lower gave higher, likes higher gave lower, first, edge

local function unpack_pair(format, size, v)
  if #v == size then return struct.unpack(format, v) end
  local f = split(v)
  return tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
end

-- Keys written in this call get their TTL once, at the end (not once per write).
local expiring = {}
local function keep(key, seconds)
  expiring[key] = seconds
end

-- Store a pair's value in its account's pair hash. A new pair may put the hash over
-- max_pairs (checked on a sample of new fields): then the half of its pairs that rank lowest
-- by `rank(value, ts)` are forgotten: lockstep pairs with the least decayed weight, ring
-- pairs with the oldest first like.
local function lockstep_rank(v, ts)
  local w, _, at = unpack_pair(PAIR_LW, 40, v)
  return w * math.pow(0.5, math.max(0, ts - at) / pair_half_life)
end

local function ring_rank(v)
  local _, _, first_like = unpack_pair(PAIR_RING, 32, v)
  return first_like
end

local function store_pair(key, partner, value, rank, ts)
  if redis.call('HSET', key, partner, value) == 1 then
    keep(key, ttl)
    if check_caps and redis.call('HLEN', key) > max_pairs then
      local all = redis.call('HGETALL', key)
      local rows = {}
      for k = 1, #all, 2 do rows[#rows + 1] = { all[k], rank(all[k + 1], ts) } end
      table.sort(rows, function(p, q) return p[2] < q[2] end)
      for k = 1, math.floor(#rows / 2) do redis.call('HDEL', key, rows[k][1]) end
    end
  end
end

-- Likes between two accounts, both ways (`sw:rp:{lower id}` field = higher id, value
-- "likes lower gave higher|likes higher gave lower|first like|edge"), since the pair's first
-- like within fan_horizon. Returns likes a gave b, likes b gave a, first, edge.
local function ring_pair(a, b, ts)
  local x, y = a, b
  if y < x then x, y = b, a end
  local v = redis.call('HGET', P .. 'rp:' .. x, y)
  if not v then return 0, 0, ts, 0 end
  local xy, yx, first, edge = unpack_pair(PAIR_RING, 32, v)
  if ts - first > fan_horizon then return 0, 0, ts, 0 end
  if a == x then return xy, yx, first, edge end
  return yx, xy, first, edge
end

-- Likes of an account in the activity window before ts (the core per-actor window), plus
-- the like being processed for its actor. Only likes strictly before ts count: the window may
-- already hold likes from ts on (the rest of this batch; in a worker, whatever detection has
-- processed ahead of the swarm stage, see stream/swarm_stage.py), and counting those would
-- make the outcome depend on how far ahead that is, not on the likes before this one.
local current_actor
local function activity(account, ts)
  local n = redis.call('ZCOUNT', activity_prefix .. account, '(' .. fmt(ts - activity_window),
                       '(' .. fmt(ts))
  if account == current_actor then n = n + 1 end
  return n
end

local function add_neighbor(kind, a, b, ts)
  local key = P .. 'nb:' .. kind .. ':' .. a
  -- Renewing a known edge is one write; a new one also trims old and surplus edges.
  if redis.call('ZADD', key, 'GT', ts, b) == 1 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(ts - edge_horizon))
    local excess = redis.call('ZCARD', key) - max_neighbors
    if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  end
  keep(key, edge_ttl)
end

-- Neighbour entries read in this call; the searches charge what they read to the budget.
local work = 0

local function neighbors(kind, a, ts, limit)
  local list = redis.call('ZREVRANGEBYSCORE', P .. 'nb:' .. kind .. ':' .. a, '+inf',
                          '(' .. fmt(ts - edge_horizon), 'LIMIT', 0, limit or max_neighbors)
  work = work + 1 + #list
  return list
end

-- Group membership (`sw:gm:{kind}:{account}`) read in this call, false where none. Only
-- add_members writes it, and keeps this up to date; keys do not expire while a script runs.
-- So Redis is asked once per account and kind and call, and a pair of farm members renewing
-- their edge, which checks whether both are in one group, mostly costs no call at all.
local membership = { l = {}, r = {} }
local function group_of(kind, a)
  local known = membership[kind][a]
  if known == nil then
    known = redis.call('GET', P .. 'gm:' .. kind .. ':' .. a)
    membership[kind][a] = known
  end
  return known or nil
end

-- Whether a and b are members of one group (of kind), and which.
local function common_group(kind, a, b)
  local g = group_of(kind, a)
  if g and g == group_of(kind, b) then return g end
  return nil
end

-- --------------------------------------------------------------------------- group state

-- Group records used in this call, read once (`sw:g:{group}` and the size of `sw:gs`) and
-- written back once, at the end: gid -> {kind, size, reported, alerted, first, last, bursts,
-- dirty}. Every decision reads these, so it sees the group as of the like being processed.
local groups = {}
local function group(kind, gid)
  local g = groups[gid]
  if g then return g end
  local h = redis.call('HMGET', P .. 'g:' .. gid, 'kind', 'reported', 'alerted', 'first', 'last',
                       'bursts')
  g = {
    kind = h[1] or kind,
    size = redis.call('SCARD', P .. 'gs:' .. gid),
    reported = tonumber(h[2] or '0'),
    alerted = tonumber(h[3] or '0'),
    first = h[4] and tonumber(h[4]),
    last = h[5] and tonumber(h[5]),
    bursts = tonumber(h[6] or '0'),
  }
  groups[gid] = g
  return g
end

-- Groups the like being processed touched, in order; their reports are decided after it.
local like_touched = {}
local function touch(kind, gid, ts, first)
  local g = group(kind, gid)
  if not g.touched then
    g.touched = true
    g.dirty = true
    like_touched[#like_touched + 1] = gid
  end
  g.first = math.min(g.first or first, first)
  g.last = math.max(g.last or ts, ts)
end

local function add_members(kind, gid, accounts)
  local g = group(kind, gid)
  local size = g.size
  local added = 0
  for _, a in ipairs(accounts) do
    if size >= max_group_size then break end
    if redis.call('SADD', P .. 'gs:' .. gid, a) == 1 then
      size = size + 1
      added = added + 1
    end
    redis.call('SET', P .. 'gm:' .. kind .. ':' .. a, gid, 'EX', ttl)
    membership[kind][a] = gid
  end
  g.size = size
  return added
end

-- Ring share: likes `account` gave to authors in `set` (a list) since each pair's first like.
local function likes_into(account, set, ts)
  local total = 0
  for _, author in ipairs(set) do
    if author ~= account then total = total + ring_pair(account, author, ts) end
  end
  return total
end

-- Can `account` join group `gid`? Enough edges into it (and, for rings, enough of its likes).
local function try_join(kind, gid, account, ts, first)
  local size = group(kind, gid).size
  if size == 0 or size >= max_group_size then return end
  local near = neighbors(kind, account, ts)
  if #near == 0 then return end
  local inside = redis.call('SMISMEMBER', P .. 'gs:' .. gid, unpack(near))
  local links, linked = 0, {}
  for k, flag in ipairs(inside) do
    if flag == 1 then
      links = links + 1
      linked[#linked + 1] = near[k]
    end
  end
  if links < math.min(min_density[kind] * size, join_edges_cap) then return end
  if kind == 'r' then
    local members = redis.call('SMEMBERS', P .. 'gs:' .. gid)
    local likes = activity(account, ts)
    if likes_into(account, members, ts) < ring_min_share * likes then return end
  end
  add_members(kind, gid, { account })
  touch(kind, gid, ts, first)
end

-- Peel the neighbourhood of edge (a, b) down to a dense set; returns the set or nil.
-- A ring search starts from the seed's ring_max_candidates partners it exchanges most likes
-- with (a sociable account has many partners; a ring member's are its ring).
local function closest_partners(seed, partners, ts)
  if #partners <= ring_max_candidates then return partners end
  local rows = {}
  for k, y in ipairs(partners) do
    local gave, got = ring_pair(seed, y, ts)
    rows[k] = { y, gave + got }
  end
  work = work + #partners
  table.sort(rows, function(p, q) return p[2] > q[2] or (p[2] == q[2] and p[1] < q[1]) end)
  local out = {}
  for k = 1, ring_max_candidates do out[k] = rows[k][1] end
  return out
end

local function peel(kind, seed, ts)
  local cand, seen = { seed }, { [seed] = true }
  local first_hop = neighbors(kind, seed, ts)
  if kind == 'r' then first_hop = closest_partners(seed, first_hop, ts) end
  for _, x in ipairs(first_hop) do
    if #cand >= max_candidates then break end
    if not seen[x] then
      seen[x] = true
      cand[#cand + 1] = x
    end
  end
  -- A dense set need not be all around one account (each member links to min_density of
  -- the others, not to all): a small neighbourhood is widened by one hop.
  local widen = math.min(max_candidates, 3 * min_size[kind])
  if kind == 'r' then widen = math.min(widen, ring_max_candidates) end
  for _, y in ipairs(first_hop) do
    if #cand >= widen then break end
    for _, x in ipairs(neighbors(kind, y, ts, widen)) do
      if #cand >= widen then break end
      if not seen[x] then
        seen[x] = true
        cand[#cand + 1] = x
      end
    end
  end
  if #cand < min_size[kind] then return nil end
  local index = {}
  for k, x in ipairs(cand) do index[x] = k end
  -- Edges among the candidates only (ZMSCORE): a hub's long neighbour list is not read.
  local adj, deg, alive = {}, {}, {}
  local fresh_after = ts - edge_horizon
  for k, x in ipairs(cand) do
    local list = {}
    local scores = redis.call('ZMSCORE', P .. 'nb:' .. kind .. ':' .. x, unpack(cand))
    work = work + #cand
    for j, score in ipairs(scores) do
      if score and j ~= k and tonumber(score) > fresh_after then list[#list + 1] = j end
    end
    adj[k] = list
    deg[k] = #list
    alive[k] = true
  end
  -- Ring share: likes each candidate gave to the other candidates, and its activity.
  local gave, likes, into = nil, nil, nil
  if kind == 'r' then
    gave, likes, into = {}, {}, {}
    for k = 1, #cand do
      gave[k] = {}
      into[k] = 0
    end
    for j, x in ipairs(cand) do
      -- x's pair hash holds its pairs with the candidates whose id sorts after x's.
      local values = redis.call('HMGET', P .. 'rp:' .. x, unpack(cand))
      work = work + #cand
      for k, v in ipairs(values) do
        if v and cand[k] > x then
          local xy, yx, first = unpack_pair(PAIR_RING, 32, v)
          if ts - first <= fan_horizon then
            gave[j][k], gave[k][j] = xy, yx
            into[j], into[k] = into[j] + xy, into[k] + yx
          end
        end
      end
    end
    for k, x in ipairs(cand) do likes[k] = math.max(1, activity(x, ts)) end
  end
  local n = #cand
  while n >= min_size[kind] do
    local need = min_density[kind] * (n - 1)
    local worst, worst_key = nil, nil
    for k = 1, #cand do
      if alive[k] then
        local bad = deg[k] < need
        local share = 1
        if kind == 'r' then
          share = into[k] / likes[k]
          bad = bad or share < ring_min_share
        end
        if bad then
          -- Drop the least linked first; among equals the one giving the group least.
          local key = deg[k] + share / 2
          if not worst or key < worst_key or (key == worst_key and cand[k] < cand[worst]) then
            worst, worst_key = k, key
          end
        end
      end
    end
    if not worst then break end
    alive[worst] = false
    n = n - 1
    for _, j in ipairs(adj[worst]) do deg[j] = deg[j] - 1 end
    if kind == 'r' then
      for k = 1, #cand do
        if gave[k][worst] then into[k] = into[k] - gave[k][worst] end
      end
    end
  end
  if n < min_size[kind] then return nil end
  local members = {}
  for k = 1, #cand do
    if alive[k] then members[#members + 1] = cand[k] end
  end
  table.sort(members)
  return members
end

-- A dense set found: grow the group most of it already belongs to, or found a new one.
local function settle(kind, members, ts, first)
  local votes, best, best_votes = {}, nil, 0
  for _, x in ipairs(members) do
    local g = group_of(kind, x)
    if g then
      votes[g] = (votes[g] or 0) + 1
      if votes[g] > best_votes or (votes[g] == best_votes and g < best) then
        best, best_votes = g, votes[g]
      end
    end
  end
  local fresh = {}
  for _, x in ipairs(members) do
    if not group_of(kind, x) then fresh[#fresh + 1] = x end
  end
  -- Grow the known group holding most of the set when it holds a quarter of it (at least
  -- group_post_members): bursts of a sparse farm are different subsets of it, each sharing
  -- a part with the last. Sets that merely touch a group (a member or two) stay apart, and
  -- their accounts in no group yet may found one.
  local gid = nil
  if best and 4 * best_votes >= #members and best_votes >= group_post_members then
    gid = best
  elseif #fresh < min_size[kind] then
    return nil
  else
    members = fresh
  end
  if not gid then
    gid = kind .. '-' .. string.sub(redis.sha1hex(kind .. ':' .. table.concat(members, ',')), 1, 16)
    redis.call('HSET', P .. 'g:' .. gid, 'kind', kind, 'created', fmt(ts), 'reported', 0,
               'alerted', fmt(ts))
    groups[gid] = { kind = kind, size = 0, reported = 0, alerted = ts, bursts = 0 }
  end
  add_members(kind, gid, fresh)
  touch(kind, gid, ts, first)
  return gid
end

-- ------------------------------------------------------------------------------ evidence

local new_edges = {}   -- edges the like being processed made: {kind, a, b, first}

local function pair_evidence(a, b, w, ts)
  local x, y = a, b
  if y < x then x, y = b, a end
  local key = P .. 'pw:' .. x
  local v = redis.call('HGET', key, y)
  local weight, count, last, first, strong = 0, 0, ts, ts, 0
  if v then
    weight, count, last, first, strong = unpack_pair(PAIR_LW, 40, v)
    if ts > last then
      local decay = math.pow(0.5, (ts - last) / pair_half_life)
      weight, count = weight * decay, count * decay
      -- Evidence that has all but faded starts a new span.
      if weight < 0.05 * edge_weight then first = ts end
    end
  end
  weight, count = weight + w, count + 1
  last = math.max(last, ts)
  first = math.min(first, ts)
  -- strong: 1 an edge, 0 not yet, -c: the share test failed at c co-likes (heavy users);
  -- tried again only once the co-likes have grown by half.
  if strong <= 0 and weight >= edge_weight and count >= -1.5 * strong then
    local la, lb = math.max(1, activity(a, ts)), math.max(1, activity(b, ts))
    if count / math.sqrt(la * lb) >= edge_cosine then
      strong = 1
      add_neighbor('l', a, b, ts)
      add_neighbor('l', b, a, ts)
      new_edges[#new_edges + 1] = { 'l', a, b, first }
    else
      strong = -count
    end
  elseif strong == 1 then
    add_neighbor('l', a, b, ts)
    add_neighbor('l', b, a, ts)
    local g = common_group('l', a, b)
    if g then touch('l', g, ts, first) end
  end
  store_pair(key, y, struct.pack(PAIR_LW, weight, count, last, first, strong), lockstep_rank, ts)
end

-- The post's recent likers (`sw:pl:{post}`), member = account, "*" appended when the like
-- was quick (pressed with too little dwell to have viewed the post).
local function liker_name(member)
  if string.sub(member, -1) == '*' then return string.sub(member, 1, -2), true end
  return member, false
end

-- SynchroTrap's synchronised action on one object, with the no-view signal: a post that,
-- within sync_seconds, gets burst_min_likers quick likes that are burst_quick_share of its
-- likes then (organic likes are mostly viewed; a farm's batch of accounts presses the button
-- on a fresh post within minutes) makes its quick likers a group at once, or grows the
-- group most of them are in (`sw:pb:{post}` = group|time). Later quick likes of the same
-- burst join that group.
local function lockstep_burst(a, post, near, ts)
  local marked = redis.call('GET', P .. 'pb:' .. post)
  if marked then
    local f = split(marked)
    if not group_of('l', a) and ts - tonumber(f[2]) <= sync then
      add_members('l', f[1], { a })
      touch('l', f[1], ts, tonumber(f[2]))
    end
    return
  end
  local quick, total, first = {}, 0, ts
  for k = 1, #near, 2 do
    local at = tonumber(near[k + 1])
    if at <= ts then
      total = total + 1
      local b, b_quick = liker_name(near[k])
      if b_quick then
        quick[#quick + 1] = b
        first = math.min(first, at)
      end
    end
  end
  if #quick < burst_min_likers or #quick < burst_quick_share * total then return end
  table.sort(quick)
  local gid = settle('l', quick, ts, first)
  if gid then
    redis.call('SET', P .. 'pb:' .. post, gid .. '|' .. fmt(ts), 'EX', post_ttl)
    redis.call('HINCRBY', P .. 'g:' .. gid, 'bursts', 1)
    groups[gid].bursts = groups[gid].bursts + 1
  end
end

local function lockstep_evidence(a, post, quick, ts)
  local key = P .. 'pl:' .. post
  local member = a
  if quick == 1 then member = a .. '*' end
  if redis.call('ZADD', key, 'NX', ts, member) == 0 then
    -- A redelivery (or a re-like): keep the newest time, count no new co-likes.
    redis.call('ZADD', key, 'GT', ts, member)
    return false
  end
  keep(key, post_ttl)
  local likers = redis.call('ZCOUNT', key, '(' .. fmt(ts - post_horizon), '+inf') - 1
  if likers % 32 == 31 or likers >= post_cap then
    -- Now and then (not per like): forget likers beyond the horizon and the cap.
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(ts - post_horizon))
    local excess = redis.call('ZCARD', key) - post_cap
    if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  end
  if likers >= hot_likers or likers == 0 then return true end
  local near = redis.call('ZREVRANGEBYSCORE', key, fmt(ts + sync), fmt(ts - sync),
                          'WITHSCORES', 'LIMIT', 0, max_colikers + 1)
  local w = 1 / math.log(likers + 1 + pop_offset)
  for k = 1, #near, 2 do
    local b, b_quick = liker_name(near[k])
    if b ~= a then
      -- Closer in time is stronger evidence of lockstep (1 at the same second, 1/2 at sync).
      local gap = math.abs(ts - tonumber(near[k + 1]))
      local weight = w * (1 - sync_weighting * gap / (2 * sync))
      -- Two likes pressed without viewing the post are stronger evidence.
      if b_quick and member ~= a then weight = weight * quick_boost end
      pair_evidence(a, b, weight, ts)
    end
  end
  if member ~= a and burst_min_likers > 0 then lockstep_burst(a, post, near, ts) end
  return true
end

-- CopyCatch's expansion: a post liked in sync by group_post_members members of a lockstep
-- group, who are group_post_share of its likers then, is one of the group's posts (`sw:pg:{post}`); an account that liked join_posts of
-- them in sync with the group (and they are join_post_share of its likes) joins, even when
-- its pairwise evidence is thin (a sparse block: each member likes a few of the posts).
local function credit(g, x, ts)
  local key = P .. 'gc:' .. g
  local count = tonumber(redis.call('ZINCRBY', key, 1, x))
  keep(key, ttl)
  if count >= join_posts and count >= join_post_share * activity(x, ts) then
    redis.call('ZREM', key, x)
    add_members('l', g, { x })
    touch('l', g, ts, ts)
  elseif count == 1 then
    local excess = redis.call('ZCARD', key) - max_pairs
    if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  end
end

local function group_posts(a, post, ts)
  local g, marked
  if membership.l[a] == nil then
    local found = redis.call('MGET', P .. 'gm:l:' .. a, P .. 'pg:' .. post)
    membership.l[a] = found[1]
    g, marked = found[1], found[2]
  else
    g, marked = membership.l[a], redis.call('GET', P .. 'pg:' .. post)
  end
  local mg, t0 = nil, nil
  if marked then
    local f = split(marked)
    mg, t0 = f[1], tonumber(f[2])
  end
  if not g then
    if mg and math.abs(ts - t0) <= 2 * sync then credit(mg, a, ts) end
    return
  end
  if mg then return end
  local near = redis.call('ZRANGEBYSCORE', P .. 'pl:' .. post, fmt(ts - sync), fmt(ts + sync),
                          'LIMIT', 0, max_candidates)
  if #near < group_post_members then return end
  for k, member in ipairs(near) do near[k] = liker_name(member) end
  local flags = redis.call('SMISMEMBER', P .. 'gs:' .. g, unpack(near))
  local inside = 0
  for _, flag in ipairs(flags) do inside = inside + flag end
  -- Most of the post's likers around this like are members: the group's own post, not a
  -- popular post its members also like (camouflage) alongside everyone else.
  if inside < group_post_members or inside < group_post_share * #near then return end
  redis.call('SET', P .. 'pg:' .. post, g .. '|' .. fmt(ts), 'EX', post_ttl)
  redis.call('PFADD', P .. 'gp:' .. g, post)
  touch('l', g, ts, ts)
  for k, flag in ipairs(flags) do
    if flag == 0 and not group_of('l', near[k]) then credit(g, near[k], ts) end
  end
end

local function ring_evidence(a, author, ts, post)
  if author == '' or author == a then return end
  local gave, got, first, edge = ring_pair(a, author, ts)
  gave = gave + 1
  if edge == 0 and got >= 1 and gave + got >= recip_min_likes then
    edge = 1
    add_neighbor('r', a, author, ts)
    add_neighbor('r', author, a, ts)
    new_edges[#new_edges + 1] = { 'r', a, author, first }
  elseif edge == 1 then
    add_neighbor('r', a, author, ts)
    add_neighbor('r', author, a, ts)
    local g = common_group('r', a, author)
    if g then
      redis.call('PFADD', P .. 'gp:' .. g, post)
      touch('r', g, ts, first)
    end
  end
  local x, y, xy, yx = a, author, gave, got
  if y < x then x, y, xy, yx = author, a, got, gave end
  local key = P .. 'rp:' .. x
  store_pair(key, y, struct.pack(PAIR_RING, xy, yx, first, edge), ring_rank, ts)
end


-- -------------------------------------------------------------------------------- groups

-- Accounts waiting for a group search, per kind: `sw:wait:{kind}` (by priority) and
-- `sw:wd:{kind}` (edges when queued | first evidence time). Their number is kept here.
local waiting = {}

local function enqueue(kind, x, degree, first)
  -- Lockstep seeds wait best connected first (farm members have many edges at once); ring
  -- seeds fewest partners first: a ring member has its ring (a search of that size), a
  -- sociable account hundreds of partners, and must not hold up the rings.
  local priority = degree
  if kind == 'r' then priority = -degree end
  local wait_key, wd_key = P .. 'wait:' .. kind, P .. 'wd:' .. kind
  waiting[kind] = waiting[kind] + redis.call('ZADD', wait_key, priority, x)
  redis.call('HSET', wd_key, x, degree .. '|' .. fmt(first))
  local excess = waiting[kind] - max_waiting
  if excess > 0 then
    -- The least promising are dropped as soon as the list is over its bound.
    for _, y in ipairs(redis.call('ZRANGE', wait_key, 0, excess - 1)) do
      redis.call('HDEL', wd_key, y)
    end
    redis.call('ZREMRANGEBYRANK', wait_key, 0, excess - 1)
    waiting[kind] = max_waiting
  end
end

-- The edges the like made: an edge inside a group changes nothing (but renews it); an edge
-- from a member may let the other end join. Edges between accounts in no group put their
-- ends on the kind's waiting list for a search, if they have enough edges to be in a dense
-- set of min_size at all.
local function settle_edges(ts)
  for _, e in ipairs(new_edges) do
    local kind, a, b, first = e[1], e[2], e[3], e[4]
    local ga, gb = group_of(kind, a), group_of(kind, b)
    if ga and ga == gb then
      touch(kind, ga, ts, first)
    elseif ga and not gb then
      try_join(kind, ga, b, ts, first)
    elseif gb and not ga then
      try_join(kind, gb, a, ts, first)
    elseif not ga and not gb then
      local need = min_density[kind] * (min_size[kind] - 1)
      for _, x in ipairs({ a, b }) do
        local degree = redis.call('ZCARD', P .. 'nb:' .. kind .. ':' .. x)
        if degree >= need then enqueue(kind, x, degree, first) end
      end
    end
  end
  new_edges = {}
end

-- Search around the account at the head of the kind's waiting list, at the time of the like
-- being processed (the like that brought the members, if a group is found or grown).
local function search_next(kind, ts)
  local wait_key, wd_key = P .. 'wait:' .. kind, P .. 'wd:' .. kind
  local top = redis.call('ZREVRANGE', wait_key, 0, 0)
  if #top == 0 then
    waiting[kind] = 0
    return
  end
  local x = top[1]
  local queued = split(redis.call('HGET', wd_key, x) or '0')
  local degree, first = tonumber(queued[1]), tonumber(queued[2] or ts)
  redis.call('ZREM', wait_key, x)
  redis.call('HDEL', wd_key, x)
  waiting[kind] = waiting[kind] - 1
  local failed_key = P .. 'pf:' .. kind .. ':' .. x
  local failed_at = tonumber(redis.call('GET', failed_key) or '0')
  -- A search that failed is repeated only once the account has more edges (a quarter more,
  -- at least one): its neighbours' new edges put them on the list themselves.
  if group_of(kind, x) or degree < failed_at + math.max(1, 0.25 * failed_at) then return end
  if kind == 'r' then
    -- An account whose partners together get less than ring_min_share of its likes
    -- cannot be in a ring: no search.
    local partners = neighbors('r', x, ts)
    work = work + #partners
    if likes_into(x, partners, ts) < ring_min_share * activity(x, ts) then
      redis.call('SET', failed_key, degree, 'EX', ttl)
      return
    end
  end
  local members = peel(kind, x, ts)
  if members then
    settle(kind, members, ts, first)
  else
    redis.call('SET', failed_key, degree, 'EX', ttl)
  end
end

-- The search budget is a bucket per kind (`sw:budget:{kind}`, neighbour entries): every new
-- like adds work_per_like, up to max_work; after each like, searches run while it is above
-- zero (the last one may overdraw it). What is searched when depends on the order of the
-- likes only, not on how they were cut into batches; what the budget does not reach waits.
local budget = {}

local function serve(kind, ts)
  budget[kind] = math.min(max_work, budget[kind] + work_per_like)
  while budget[kind] > 0 and waiting[kind] > 0 do
    local before = work
    search_next(kind, ts)
    budget[kind] = budget[kind] - (work - before)
  end
end

-- ------------------------------------------------------------------------------- reports

-- Reports are kept per trigger event (`sw:rep:{event id}`, one JSON row each, the row as
-- returned minus the index), so a like seen again re-reports what it triggered: a worker that
-- crashed after this script but before the alert was stored does not lose the alert.
local out = {}

-- Groups due for a follow-up (`sw:due`, score = event time realert_seconds after their last
-- report): one with members its last report did not name is reported again at the first like
-- that reaches that time, touched or not. `due_next` is the earliest due time (nil: none).
local due_key = P .. 'due'
local due_next = nil
local function load_due()
  local head = redis.call('ZRANGE', due_key, 0, 0, 'WITHSCORES')
  due_next = head[2] and tonumber(head[2])
end

local function follow_ups(ts)
  for _, gid in ipairs(redis.call('ZRANGEBYSCORE', due_key, '-inf', fmt(ts))) do
    redis.call('ZREM', due_key, gid)
    local g = group(string.sub(gid, 1, 1), gid)
    if not g.touched and g.size > g.reported then
      g.touched = true
      like_touched[#like_touched + 1] = gid
    end
  end
  load_due()
end

-- After each like, the groups it touched: one is reported when found, then when it has grown
-- by realert_growth or has new members realert_seconds after its last report (and
-- realert_min_gap after it: the alert gate's cool-down). The like is the trigger; the alert
-- lists the members as of that like.
local function report(index, event_id, ts)
  for _, gid in ipairs(like_touched) do
    local g = groups[gid]
    g.touched = false
    local kind, size, reported = g.kind, g.size, g.reported
    local due = size >= min_size[kind] and size > reported and (
      reported == 0 or (ts - g.alerted >= realert_min_gap and (
        size >= reported * (1 + realert_growth) or ts - g.alerted >= realert_seconds)))
    if due then
      g.reported, g.alerted, g.dirty = size, ts, true
      local at = ts + realert_seconds
      redis.call('ZADD', due_key, at, gid)
      if not due_next or at < due_next then due_next = at end
      local gs_key = P .. 'gs:' .. gid
      local members = redis.call('SMEMBERS', gs_key)
      table.sort(members)
      local edges = 0
      for _, x in ipairs(members) do
        local near = neighbors(kind, x, ts)
        if #near > 0 then
          for _, flag in ipairs(redis.call('SMISMEMBER', gs_key, unpack(near))) do
            edges = edges + flag
          end
        end
      end
      local density = 0
      if size > 1 then density = edges / (size * (size - 1)) end
      local row = {
        gid, kind, size, fmt(density), redis.call('PFCOUNT', P .. 'gp:' .. gid), fmt(g.first),
        fmt(g.last), size - reported, edges / 2, g.bursts, size,
      }
      for _, x in ipairs(members) do row[#row + 1] = x end
      local rep_key = P .. 'rep:' .. event_id
      redis.call('RPUSH', rep_key, cjson.encode(row))
      redis.call('EXPIRE', rep_key, ttl)
      out[#out + 1] = index
      for _, value in ipairs(row) do out[#out + 1] = value end
    end
  end
  like_touched = {}
end

-- -------------------------------------------------------------------------------- likes

local likes = cjson.decode(ARGV[i])

for _, kind in ipairs({ 'l', 'r' }) do
  budget[kind] = tonumber(redis.call('GET', P .. 'budget:' .. kind) or max_work)
  waiting[kind] = redis.call('ZCARD', P .. 'wait:' .. kind)
end
load_due()

-- Each like is taken to the end (evidence, edges, searches, reports) before the next one, so
-- the outcome depends on the order of the likes, not on where a batch ends.
local index = 0
for j = 1, #likes, 6 do
  index = index + 1
  local event_id, actor, post, author, ts, flags =
    likes[j], likes[j + 1], likes[j + 2], likes[j + 3], likes[j + 4], likes[j + 5]
  -- flags: 1 quick (dwell under quick_dwell_ms), 2 check hash caps.
  current_actor = actor
  check_caps = flags >= 2
  local quick = flags % 2
  -- A like of a post the actor already liked (within the post's horizon) adds no evidence:
  -- that makes a redelivered batch a no-op, whichever script a crash interrupted; it
  -- re-reports what it triggered the first time.
  if lockstep_evidence(actor, post, quick, ts) then
    group_posts(actor, post, ts)
    ring_evidence(actor, author, ts, post)
    settle_edges(ts)
    serve('l', ts)
    serve('r', ts)
    if due_next and ts >= due_next then follow_ups(ts) end
    report(index, event_id, ts)
  else
    for _, row in ipairs(redis.call('LRANGE', P .. 'rep:' .. event_id, 0, -1)) do
      out[#out + 1] = index
      for _, value in ipairs(cjson.decode(row)) do out[#out + 1] = value end
    end
  end
end

-- ------------------------------------------------------------------------------ write back

for gid, g in pairs(groups) do
  if g.dirty then
    local gk = P .. 'g:' .. gid
    redis.call('HSET', gk, 'first', fmt(g.first), 'last', fmt(g.last), 'reported', g.reported,
               'alerted', fmt(g.alerted))
    for _, key in ipairs({ gk, P .. 'gs:' .. gid, P .. 'gp:' .. gid }) do
      redis.call('EXPIRE', key, ttl)
    end
  end
end
for _, kind in ipairs({ 'l', 'r' }) do
  redis.call('SET', P .. 'budget:' .. kind, budget[kind], 'EX', ttl)
  redis.call('EXPIRE', P .. 'wait:' .. kind, ttl)
  redis.call('EXPIRE', P .. 'wd:' .. kind, ttl)
end
redis.call('EXPIRE', due_key, ttl)
for key, seconds in pairs(expiring) do redis.call('EXPIRE', key, seconds) end
return out
