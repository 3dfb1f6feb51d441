#!/bin/sh
cd /work/main
export OMP_NUM_THREADS=2
LOGS=output/camvid_protocol/logs
python experiments/dff_deeplab/dff_deeplab_end2end_train_test.py --cfg experiments/dff_deeplab/cfgs/camvid_protocol_accel_18.yaml --cpu --resume --no-test dataset.dataset_path=../shared/data/camvid TRAIN.end_epoch=3 TRAIN.lr_step=2.5 TEST.test_epoch=3 TRAIN.model_prefix=accel-18-camvid-3ep >> $LOGS/stage4b_accel_18_3ep.log 2>&1 || exit 1
python experiments/dff_deeplab/reproduce_tables.py --versions 18 --intervals 1 2 3 4 5 --model 18=output/camvid_protocol/camvid_protocol_accel_18/train/accel-18-camvid-3ep --epoch 3 --output output/camvid_protocol/tables_3ep --dataset camvid --data-root ../shared/data/camvid --scales 180 240 --stride 32 -e 0 --cpu >> $LOGS/stage5c_tables_3ep.log 2>&1
echo "done $(date)" >> $LOGS/stage5c_tables_3ep.log
