// Minimal benchmark of the official Java client (rocketmq-client, same version as the broker), doing
// exactly what bench.ts does with the iot-bridge client: sync send, pipelined (async) send with a
// bounded window, and sequential pull by offset. Compiled and run by bench/rocketmq/bench.ts.
// Prints one JSON line per measurement: {"op":..,"messages":..,"seconds":..}
//
// Usage: JavaClientBench <namesrv> <topic> <syncCount> <pipelinedCount> <window> <bodyBytes> <warmupCount>
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

public class JavaClientBench {
    public static void main(String[] args) throws Exception {
        String namesrv = args[0];
        String topic = args[1];
        int syncCount = Integer.parseInt(args[2]);
        int pipelinedCount = Integer.parseInt(args[3]);
        int window = Integer.parseInt(args[4]);
        int bodyBytes = Integer.parseInt(args[5]);
        int warmup = Integer.parseInt(args[6]);
        byte[] body = new byte[bodyBytes];
        for (int i = 0; i < body.length; i++) body[i] = (byte) ('a' + i % 26);

        DefaultMQProducer producer = new DefaultMQProducer("java_bench_producer");
        producer.setNamesrvAddr(namesrv);
        producer.setSendMsgTimeout(10000);
        // Same as the Node client default: no compression (bodies are small anyway).
        producer.setCompressMsgBodyOverHowmuch(Integer.MAX_VALUE);
        producer.start();

        for (int i = 0; i < warmup; i++) producer.send(new Message(topic, body));

        long t0 = System.nanoTime();
        for (int i = 0; i < syncCount; i++) {
            SendResult r = producer.send(new Message(topic, body));
            if (r.getSendStatus() != SendStatus.SEND_OK) throw new IllegalStateException("send status " + r.getSendStatus());
        }
        report("send-sync", syncCount, t0);

        Semaphore permits = new Semaphore(window);
        CountDownLatch done = new CountDownLatch(pipelinedCount);
        AtomicLong failures = new AtomicLong();
        long t1 = System.nanoTime();
        for (int i = 0; i < pipelinedCount; i++) {
            permits.acquire();
            producer.send(new Message(topic, body), new SendCallback() {
                public void onSuccess(SendResult sendResult) {
                    permits.release();
                    done.countDown();
                }

                public void onException(Throwable e) {
                    failures.incrementAndGet();
                    permits.release();
                    done.countDown();
                }
            }, 10000);
        }
        done.await();
        if (failures.get() > 0) throw new IllegalStateException(failures.get() + " async sends failed");
        report("send-pipelined", pipelinedCount, t1);
        producer.shutdown();

        DefaultMQPullConsumer consumer = new DefaultMQPullConsumer("java_bench_reader");
        consumer.setNamesrvAddr(namesrv);
        consumer.start();
        List<MessageQueue> queues = new java.util.ArrayList<>(consumer.fetchSubscribeMessageQueues(topic));
        long pulled = 0;
        long bytes = 0;
        // Warm-up (untimed): the first pulls of a run pay for JIT compilation on both sides.
        long warmOffset = 0;
        for (int i = 0; i < warmup / 32; i++) {
            PullResult r = consumer.pull(queues.get(0), "*", warmOffset, 32);
            if (r.getPullStatus() != PullStatus.FOUND) break;
            warmOffset = r.getNextBeginOffset();
        }
        long t2 = System.nanoTime();
        for (MessageQueue mq : queues) {
            long offset = 0;
            for (int guard = 0; guard < 10_000_000; guard++) {
                PullResult r = consumer.pull(mq, "*", offset, 32);
                if (r.getPullStatus() != PullStatus.FOUND) break;
                for (MessageExt m : r.getMsgFoundList()) bytes += m.getBody().length;
                pulled += r.getMsgFoundList().size();
                offset = r.getNextBeginOffset();
            }
        }
        report("pull", pulled, t2);
        consumer.shutdown();
        if (bytes == 0) throw new IllegalStateException("pulled nothing");
    }

    private static void report(String op, long messages, long startNanos) {
        double seconds = (System.nanoTime() - startNanos) / 1e9;
        System.out.println("{\"op\":\"" + op + "\",\"messages\":" + messages + ",\"seconds\":" + seconds + "}");
    }
}
