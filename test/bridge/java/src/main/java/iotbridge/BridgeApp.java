// The "backend service" of the bridge tests: a small application on the official RocketMQ Java client
// (org.apache.rocketmq:rocketmq-client), driven by test/bridge/java-app.ts through JSON lines.
//
//   consume --namesrv HOST:PORT --topic T --group G [--tags EXPR] [--broadcast] [--instance NAME]
//       DefaultMQPushConsumer + MessageListenerOrderly, CONSUME_FROM_FIRST_OFFSET, clustering unless
//       --broadcast. Prints {"ready":true,"clientId":..,"rebalanced":..} after start() and the first
//       rebalance (at most 15 s), then one JSON line per message. Exits on stdin EOF or SIGTERM
//       (consumer.shutdown()).
//   produce --namesrv HOST:PORT [--group G] [--send-timeout-ms N]
//       DefaultMQProducer. Prints {"ready":true} after start(), then answers every stdin line
//       {"id":..,"topic":..,"tags":..,"keys":..,"properties":{..},"body":"<base64>"} with
//       {"id":..,"ok":true,"msgId":..,"status":"SEND_OK",..} or {"id":..,"ok":false,"error":".."}.
//       Exits on stdin EOF (producer.shutdown()).
//
// stdout carries only these JSON lines: System.out is pointed at stderr before any RocketMQ class is
// loaded, so whatever the client (or its shaded logback) prints lands on stderr.
package iotbridge;

import com.alibaba.fastjson2.JSON;
import com.alibaba.fastjson2.JSONArray;
import com.alibaba.fastjson2.JSONObject;
import com.alibaba.fastjson2.JSONWriter;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.rocketmq.client.consumer.AllocateMessageQueueStrategy;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyContext;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.remoting.protocol.heartbeat.MessageModel;

public final class BridgeApp {
    private static final long REBALANCE_WAIT_MS = 15_000;
    /** The real stdout; only {@link #emit} writes to it. */
    private static PrintStream out;

    private BridgeApp() {
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length == 0) usage("missing command");
        Map<String, String> opts = parseOptions(args);
        switch (args[0]) {
            case "consume":
                consume(opts);
                break;
            case "produce":
                produce(opts);
                break;
            default:
                usage("unknown command " + args[0]);
        }
        // Client threads (netty, scheduled executors) must not keep the JVM alive after shutdown().
        System.exit(0);
    }

    // ---------------------------------------------------------------- consume

    private static void consume(Map<String, String> opts) throws Exception {
        String namesrv = required(opts, "namesrv");
        String topic = required(opts, "topic");
        String group = required(opts, "group");
        String tags = opts.getOrDefault("tags", "*");
        boolean broadcast = opts.containsKey("broadcast");

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
        consumer.setNamesrvAddr(namesrv);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setMessageModel(broadcast ? MessageModel.BROADCASTING : MessageModel.CLUSTERING);
        consumer.subscribe(topic, tags);
        // A unique instance name, so each process has its own client id. Broadcasting consumers otherwise
        // keep instanceName DEFAULT (clientId ip@DEFAULT) and two of them on one host share one local
        // offset file (user.home/.rocketmq_offsets/ip@DEFAULT/group/offsets.json): a late starter then
        // resumes from the other's offsets and misses messages. --instance NAME resumes on purpose.
        consumer.setInstanceName(opts.getOrDefault("instance", ProcessHandle.current().pid() + "#" + System.nanoTime()));
        // Clustering: note when a rebalance has seen this consumer in the group's consumer list.
        CountDownLatch allocated = new CountDownLatch(1);
        AllocateMessageQueueAveragely averagely = new AllocateMessageQueueAveragely();
        consumer.setAllocateMessageQueueStrategy(new AllocateMessageQueueStrategy() {
            @Override
            public List<MessageQueue> allocate(String consumerGroup, String currentCID, List<MessageQueue> mqAll, List<String> cidAll) {
                List<MessageQueue> mine = averagely.allocate(consumerGroup, currentCID, mqAll, cidAll);
                if (cidAll != null && cidAll.contains(currentCID)) allocated.countDown();
                return mine;
            }

            @Override
            public String getName() {
                return averagely.getName();
            }
        });
        consumer.registerMessageListener(new MessageListenerOrderly() {
            @Override
            public ConsumeOrderlyStatus consumeMessage(List<MessageExt> msgs, ConsumeOrderlyContext context) {
                for (MessageExt m : msgs) {
                    emit(describe(m, context.getMessageQueue().getBrokerName()));
                }
                return ConsumeOrderlyStatus.SUCCESS;
            }
        });

        AtomicBoolean shutDown = new AtomicBoolean(false);
        Runnable shutdown = () -> {
            if (shutDown.compareAndSet(false, true)) consumer.shutdown();
        };
        // SIGTERM (and System.exit) run shutdown hooks.
        Runtime.getRuntime().addShutdownHook(new Thread(shutdown, "bridge-app-shutdown"));
        consumer.start();
        Map<String, Object> ready = ready();
        ready.put("clientId", consumer.buildMQClientId());
        ready.put("rebalanced", awaitFirstRebalance(consumer, allocated, broadcast, REBALANCE_WAIT_MS));
        emit(ready);
        drainStdin();
        shutdown.run();
    }

    /**
     * start() rebalances at once only if its heartbeat got the client's heartbeat lock; when the
     * scheduled heartbeat holds it at that moment, the first rebalance waits for RebalanceService's
     * 20 s period. Nudge it until queues are assigned (broadcasting: this process holds queues;
     * clustering: an allocation saw this client in the group), or give up after waitMs.
     */
    private static boolean awaitFirstRebalance(DefaultMQPushConsumer consumer, CountDownLatch allocated, boolean broadcast, long waitMs)
        throws InterruptedException {
        long deadline = System.currentTimeMillis() + waitMs;
        while (System.currentTimeMillis() < deadline) {
            boolean done = broadcast
                ? !consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable().isEmpty()
                : allocated.getCount() == 0;
            if (done) return true;
            consumer.getDefaultMQPushConsumerImpl().getmQClientFactory().rebalanceImmediately();
            Thread.sleep(200);
        }
        return false;
    }

    private static Map<String, Object> describe(MessageExt m, String queueBroker) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("topic", m.getTopic());
        line.put("tags", m.getTags());
        line.put("keys", m.getKeys());
        line.put("queueId", m.getQueueId());
        line.put("queueOffset", m.getQueueOffset());
        line.put("msgId", m.getMsgId());
        line.put("bornTimestamp", m.getBornTimestamp());
        line.put("brokerName", m.getBrokerName() != null ? m.getBrokerName() : queueBroker);
        line.put("storeTimestamp", m.getStoreTimestamp());
        line.put("reconsumeTimes", m.getReconsumeTimes());
        Map<String, String> props = m.getProperties();
        line.put("properties", props != null ? new LinkedHashMap<>(props) : new LinkedHashMap<String, String>());
        byte[] body = m.getBody();
        line.put("body", Base64.getEncoder().encodeToString(body != null ? body : new byte[0]));
        return line;
    }

    private static void drainStdin() throws IOException {
        byte[] buf = new byte[4096];
        while (System.in.read(buf) >= 0) {
            // The consumer reads no commands; stdin only signals the end (EOF).
        }
    }

    // ---------------------------------------------------------------- produce

    private static void produce(Map<String, String> opts) throws Exception {
        String namesrv = required(opts, "namesrv");
        String group = opts.getOrDefault("group", "iotb_test_producer");
        DefaultMQProducer producer = new DefaultMQProducer(group);
        producer.setNamesrvAddr(namesrv);
        if (opts.containsKey("send-timeout-ms")) producer.setSendMsgTimeout(Integer.parseInt(opts.get("send-timeout-ms")));

        AtomicBoolean shutDown = new AtomicBoolean(false);
        Runnable shutdown = () -> {
            if (shutDown.compareAndSet(false, true)) producer.shutdown();
        };
        Runtime.getRuntime().addShutdownHook(new Thread(shutdown, "bridge-app-shutdown"));
        producer.start();
        emit(ready());

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String text;
        while ((text = in.readLine()) != null) {
            if (text.isBlank()) continue;
            emit(send(producer, text));
        }
        shutdown.run();
    }

    private static Map<String, Object> send(DefaultMQProducer producer, String text) {
        Map<String, Object> reply = new LinkedHashMap<>();
        JSONObject req;
        try {
            req = JSON.parseObject(text);
        } catch (RuntimeException e) {
            reply.put("id", null);
            reply.put("ok", false);
            reply.put("error", "invalid JSON request: " + e.getMessage());
            return reply;
        }
        reply.put("id", req == null ? null : req.get("id"));
        try {
            if (req == null) throw new IllegalArgumentException("request is not a JSON object");
            String topic = req.getString("topic");
            if (topic == null || topic.isEmpty()) throw new IllegalArgumentException("topic is required");
            String b64 = req.getString("body");
            if (b64 == null) throw new IllegalArgumentException("body (base64) is required");
            Message msg = new Message(topic, Base64.getDecoder().decode(b64));
            String tags = req.getString("tags");
            if (tags != null && !tags.isEmpty()) msg.setTags(tags);
            Object keys = req.get("keys");
            if (keys instanceof JSONArray) {
                List<String> list = new ArrayList<>();
                for (Object k : (JSONArray) keys) list.add(String.valueOf(k));
                msg.setKeys(list);
            } else if (keys != null && !String.valueOf(keys).isEmpty()) {
                msg.setKeys(String.valueOf(keys));
            }
            JSONObject props = req.getJSONObject("properties");
            if (props != null) {
                for (Map.Entry<String, Object> e : props.entrySet()) {
                    msg.putUserProperty(e.getKey(), e.getValue() == null ? null : String.valueOf(e.getValue()));
                }
            }
            SendResult r = producer.send(msg);
            boolean ok = r.getSendStatus() == SendStatus.SEND_OK;
            reply.put("ok", ok);
            if (!ok) reply.put("error", "send status " + r.getSendStatus());
            reply.put("msgId", r.getMsgId());
            reply.put("offsetMsgId", r.getOffsetMsgId());
            reply.put("status", r.getSendStatus().name());
            reply.put("queueId", r.getMessageQueue().getQueueId());
            reply.put("queueOffset", r.getQueueOffset());
            reply.put("brokerName", r.getMessageQueue().getBrokerName());
        } catch (MQClientException e) {
            reply.put("ok", false);
            // getMessage() appends a long FAQ link; getErrorMessage() is the client's own text.
            reply.put("error", "MQClientException(" + e.getResponseCode() + "): " + e.getErrorMessage());
        } catch (MQBrokerException e) {
            reply.put("ok", false);
            reply.put("error", "MQBrokerException(" + e.getResponseCode() + "): " + e.getErrorMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            reply.put("ok", false);
            reply.put("error", "interrupted");
        } catch (Exception e) {
            reply.put("ok", false);
            reply.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        return reply;
    }

    // ---------------------------------------------------------------- helpers

    private static Map<String, Object> ready() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("ready", true);
        return m;
    }

    private static void emit(Map<String, Object> line) {
        String json = JSON.toJSONString(line, JSONWriter.Feature.WriteNulls);
        synchronized (BridgeApp.class) {
            out.print(json);
            out.print('\n');
            out.flush();
        }
    }

    private static Map<String, String> parseOptions(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) usage("unexpected argument " + a);
            String name = a.substring(2);
            if (name.equals("broadcast")) {
                opts.put(name, "true");
            } else {
                if (i + 1 >= args.length) usage("missing value for " + a);
                opts.put(name, args[++i]);
            }
        }
        return opts;
    }

    private static String required(Map<String, String> opts, String name) {
        String v = opts.get(name);
        if (v == null || v.isEmpty()) usage("--" + name + " is required");
        return v;
    }

    private static void usage(String problem) {
        System.err.println("BridgeApp: " + problem);
        System.err.println("usage: consume --namesrv HOST:PORT --topic T --group G [--tags EXPR] [--broadcast] [--instance NAME]");
        System.err.println("       produce --namesrv HOST:PORT [--group G] [--send-timeout-ms N]");
        System.exit(2);
    }
}
